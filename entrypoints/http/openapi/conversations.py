"""`/users/{user_id}/conversations`: a tenant's conversations, newest activity first, and one of them."""

from __future__ import annotations

from domain import limits
from domain.channels import BotState
from domain.conversations import Conversation
from entrypoints.http.openapi.components import COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, nullable, ref

CONVERSATION_ID: JsonSchema = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "The conversation's id (a whole number); anything else names nothing (404).",
    "schema": {"type": "integer", "minimum": 1},
}

_FILTERS = [
    query("phone_number_id", {"type": "string", "minLength": 1, "maxLength": limits.CHANNEL_ID}, "One channel."),
    query("customer_id", {"type": "string", "minLength": 1, "maxLength": limits.CUSTOMER_ID}, "One customer."),
    query(
        "state",
        {"type": "string", "enum": ["active", "archived"]},
        "`active`: the conversations taking new messages; `archived`: the closed ones. Both when absent.",
    ),
    query(
        "bot",
        {"type": "string", "enum": [state.value for state in BotState]},
        "The conversation's own bot state: `paused` lists the conversations a person has taken over.",
    ),
    {"$ref": "#/components/parameters/Limit"},
    query(
        "cursor",
        {"type": "string", "pattern": r"^[0-9]{1,19}\.[0-9]{1,18}$"},
        "`next_cursor` of the previous page, as it was given (opaque); absent for the first page.",
    ),
]

SCHEMAS: dict[str, JsonSchema] = {
    "Conversation": entity_schema(
        Conversation,
        # The tenant is the path's; the AI's last item id is internal to the service.
        omit=("user_id", "openai_last_item_id", "ai_seen_sequence_no"),
        description=(
            "A customer's conversation with one agent. Only the active one of a customer and an agent takes "
            "new messages; `openai_conversation_id` finds it in OpenAI's dashboard. `bot` says whether the AI "
            "answers it (`paused`: a person does, until `bot_paused_until` when that is set)."
        ),
    ),
    "ConversationPage": closed(
        {
            "conversations": {"type": "array", "items": ref("Conversation")},
            "next_cursor": nullable({"type": "string", "description": "Pass as `cursor` for the next page."}),
        }
    ),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/conversations": {
        "get": operation(
            "list_conversations",
            "A tenant's conversations",
            tag="conversations",
            parameters=[USER_ID, *_FILTERS],
            responses={"200": answer("One page of conversations, newest activity first.", ref("ConversationPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="A bad parameter is 422 naming it; unknown parameters are ignored.",
        )
    },
    "/users/{user_id}/conversations/{conversation_id}": {
        "get": operation(
            "get_conversation",
            "One conversation",
            tag="conversations",
            parameters=[USER_ID, CONVERSATION_ID],
            responses={"200": answer("The conversation.", ref("Conversation"))},
            error_statuses=COMMON_ERRORS,
            description="Its messages: `GET /users/{user_id}/messages?conversation_id=…&order=sequence`.",
        )
    },
}
