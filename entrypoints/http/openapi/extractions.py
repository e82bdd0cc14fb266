"""`/users/{user_id}/extractions`: a tenant's leads (the latest extraction of each conversation), and
`/users/{user_id}/conversations/{conversation_id}/extractions`: one conversation's history."""

from __future__ import annotations

from domain import limits
from domain.channels import ChannelType
from domain.extraction import DEMO_FIELD, DESCRIPTIONS, FIELDS, SCORE_FIELDS, SCORE_RANGE, TEXT_FIELDS
from entrypoints.http.api.extractions import SCORE_FILTERS
from entrypoints.http.openapi.components import COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.conversations import CONVERSATION_ID
from entrypoints.http.openapi.schemas import JsonSchema, closed, nullable, ref, type_schema

_SCORE: JsonSchema = {"type": "integer", "minimum": min(SCORE_RANGE), "maximum": max(SCORE_RANGE)}

_CURSOR = query(
    "cursor",
    {"type": "integer", "minimum": 1},
    "`next_cursor` of the previous page; absent for the first page.",
)

_FILTERS = [
    query("channel", type_schema(ChannelType), "Only leads from this kind of channel."),
    query("phone_number_id", {"type": "string", "minLength": 1, "maxLength": limits.CHANNEL_ID}, "One channel."),
    *(
        query(
            name,
            _SCORE,
            f"Only leads whose `{name.removeprefix('min_')}` is at least this (a lead without it is left out).",
        )
        for name in SCORE_FILTERS
    ),
    query(
        "has_demo",
        {"type": "string", "enum": ["true", "false"]},
        "`true`: only leads with a demo time; `false`: only leads without one.",
    ),
    query("since", {"type": "string", "format": "date-time"}, "Extracted at or after (with a timezone)."),
    query("until", {"type": "string", "format": "date-time"}, "Extracted before; later than `since`."),
    _CURSOR,
    {"$ref": "#/components/parameters/Limit"},
]


def _field_schema(name: str) -> JsonSchema:
    if name in SCORE_FIELDS:
        schema: JsonSchema = dict(_SCORE)
    elif name == DEMO_FIELD:
        schema = {"type": "string", "format": "date-time"}
    else:
        schema = {"type": "string", "maxLength": TEXT_FIELDS[name]}
    return nullable({**schema, "description": DESCRIPTIONS[name]})


SCHEMAS: dict[str, JsonSchema] = {
    "Extraction": closed(
        {
            "extraction_id": {"type": "integer", "description": "Its id; newer extractions have higher ids."},
            "conversation_id": {"type": "integer"},
            "phone_number_id": {"type": "string", "description": "The channel of the conversation."},
            "channel": nullable(
                {**type_schema(ChannelType), "description": "The channel's kind; null for a channel deleted since."}
            ),
            "through_sequence_no": {
                "type": "integer",
                "description": "The conversation's messages up to this `sequence_no` were read.",
            },
            **{name: _field_schema(name) for name in FIELDS},
            "missing": {
                "type": "object",
                "propertyNames": {"enum": list(FIELDS)},
                "additionalProperties": {"type": "string"},
                "description": (
                    "The fields that are null, each with the reason: not stated in the conversation, or what the "
                    "AI answered and why it was not kept (not a score from 1 to 3, not an e-mail address, …)."
                ),
            },
            "credits_charged": {"type": "integer", "minimum": 0, "description": "`CREDITS_PER_EXTRACTION`."},
            "created_at": {"type": "string", "format": "date-time"},
        },
        description=(
            "One reading of a conversation for its lead data. `demo_datetime` is in the customer's own UTC offset."
        ),
    ),
    "ExtractionPage": closed(
        {
            "extractions": {"type": "array", "items": ref("Extraction"), "description": "Newest first."},
            "next_cursor": nullable({"type": "integer", "description": "Pass as `cursor` for the next page."}),
        }
    ),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/extractions": {
        "get": operation(
            "list_extractions",
            "A tenant's leads: the latest extraction of each conversation",
            tag="extractions",
            parameters=[USER_ID, *_FILTERS],
            responses={"200": answer("One page of leads, newest extraction first.", ref("ExtractionPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="Filters combine. A bad parameter is 422 naming it; unknown parameters are ignored.",
        )
    },
    "/users/{user_id}/conversations/{conversation_id}/extractions": {
        "get": operation(
            "list_conversation_extractions",
            "Every extraction of one conversation",
            tag="extractions",
            parameters=[USER_ID, CONVERSATION_ID, _CURSOR, {"$ref": "#/components/parameters/Limit"}],
            responses={"200": answer("One page of the history, newest first.", ref("ExtractionPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="Another tenant's conversation is not found (404).",
        )
    },
}
