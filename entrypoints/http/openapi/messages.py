"""`/users/{user_id}/messages`: a tenant's messages, both directions, filtered and paginated."""

from __future__ import annotations

from domain import limits
from domain.messages import Message, MessageStatus
from entrypoints.http.openapi.components import COMMON_ERRORS, USER_ID, answer, operation
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, nullable, ref, type_schema


def _query(name: str, schema: JsonSchema, description: str) -> JsonSchema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_FILTERS = [
    _query("phone_number_id", {"type": "string", "minLength": 1, "maxLength": limits.CHANNEL_ID}, "One channel."),
    _query("customer", {"type": "string", "minLength": 1, "maxLength": limits.CUSTOMER_ID}, "One customer."),
    _query("conversation_id", {"type": "integer", "minimum": 1}, "One conversation."),
    _query("status", type_schema(MessageStatus), "One status."),
    _query("since", {"type": "string", "format": "date-time"}, "Created at or after (with a timezone)."),
    _query("until", {"type": "string", "format": "date-time"}, "Created before; later than `since`."),
    _query(
        "order",
        {"type": "string", "enum": ["newest", "sequence"], "default": "newest"},
        "`newest` first, or `sequence`: one conversation in order (needs `conversation_id`).",
    ),
    {"$ref": "#/components/parameters/Limit"},
    {"$ref": "#/components/parameters/Cursor"},
]

SCHEMAS: dict[str, JsonSchema] = {
    "Message": entity_schema(Message, description="A customer's message (inbound) or a reply part (outbound)."),
    "MessagePage": closed(
        {
            "messages": {"type": "array", "items": ref("Message")},
            "next_cursor": nullable({"type": "integer", "description": "Pass as `cursor` for the next page."}),
        }
    ),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/messages": {
        "get": operation(
            "get_messages",
            "A tenant's messages",
            tag="messages",
            parameters=[USER_ID, *_FILTERS],
            responses={"200": answer("One page of messages.", ref("MessagePage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="A bad parameter is 422 naming it; unknown parameters are ignored.",
        )
    },
}
