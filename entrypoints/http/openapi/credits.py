"""`/users/{user_id}/credits`: the balance and recent ledger; top-ups by the operator; the whole ledger,
paginated."""

from __future__ import annotations

from domain.credits import LedgerEntry
from entrypoints.http.api.credits import LEDGER_SHOWN
from entrypoints.http.api.payloads import TopUpRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, nullable, ref, request_schema

_BALANCE: JsonSchema = {
    "balance": {"type": "integer", "description": "Credits held."},
    "reserved": {"type": "integer", "description": "Held for AI calls in flight."},
    "available": {"type": "integer", "description": "What new turns can spend: balance - reserved."},
}

SCHEMAS: dict[str, JsonSchema] = {
    "LedgerEntry": entity_schema(LedgerEntry, description="`amount` is signed: + top-up, - charge."),
    "Credits": closed(
        {
            "user_id": {"type": "string"},
            **_BALANCE,
            "ledger": {
                "type": "array",
                "items": ref("LedgerEntry"),
                "maxItems": LEDGER_SHOWN,
                "description": f"The latest {LEDGER_SHOWN} entries, newest first.",
            },
            "ledger_next_cursor": nullable(
                {
                    "type": "integer",
                    "description": "Where the older entries continue: `cursor` of `GET …/credits/ledger`.",
                }
            ),
        }
    ),
    "LedgerPage": closed(
        {
            "entries": {"type": "array", "items": ref("LedgerEntry"), "description": "Newest first."},
            "next_cursor": nullable({"type": "integer", "description": "Pass as `cursor` for the next page."}),
        }
    ),
    "TopUpRequest": request_schema(TopUpRequest, description="`amount`: a positive whole number of credits."),
    "TopUp": closed({"entry": ref("LedgerEntry"), **_BALANCE}),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/credits": {
        "get": operation(
            "get_credits",
            "A tenant's balance and latest ledger entries",
            tag="credits",
            parameters=[USER_ID],
            responses={"200": answer("The balance.", ref("Credits"))},
            error_statuses=COMMON_ERRORS,
        ),
        "post": operation(
            "top_up_credits",
            "Add credits (admin key only)",
            tag="credits",
            parameters=[USER_ID, {"$ref": "#/components/parameters/IdempotencyKey"}],
            body=ref("TopUpRequest"),
            responses={"201": answer("The ledger entry and the new balance.", ref("TopUp"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description="A tenant's key is told this does not exist (404).",
        ),
    },
    "/users/{user_id}/credits/ledger": {
        "get": operation(
            "get_ledger",
            "A tenant's ledger, newest first",
            tag="credits",
            parameters=[
                USER_ID,
                {"$ref": "#/components/parameters/Limit"},
                query(
                    "cursor",
                    {"type": "integer", "minimum": 1},
                    "`next_cursor` of the previous page (or the balance's `ledger_next_cursor`); absent for the "
                    "first page.",
                ),
            ],
            responses={"200": answer("One page of ledger entries.", ref("LedgerPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="A bad parameter is 422 naming it; unknown parameters are ignored.",
        )
    },
}
