"""`/users/{user_id}/credits`: the balance and recent ledger; top-ups by the operator."""

from __future__ import annotations

from domain.credits import LedgerEntry
from entrypoints.http.api.credits import LEDGER_SHOWN
from entrypoints.http.api.payloads import TopUpRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, ref, request_schema

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
}
