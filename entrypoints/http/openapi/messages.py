"""`/users/{user_id}/messages`: a tenant's messages, both directions, filtered and paginated; a failed
one retried."""

from __future__ import annotations

from domain import conversations, limits, messages, turns
from domain.messages import Direction, Message, MessageStatus
from entrypoints.http.openapi.components import COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, nullable, ref, type_schema

_FILTERS = [
    query("phone_number_id", {"type": "string", "minLength": 1, "maxLength": limits.CHANNEL_ID}, "One channel."),
    query("customer", {"type": "string", "minLength": 1, "maxLength": limits.CUSTOMER_ID}, "One customer."),
    query("conversation_id", {"type": "integer", "minimum": 1}, "One conversation."),
    query("status", type_schema(MessageStatus), "One status."),
    query("direction", type_schema(Direction), "`inbound`: the customers' messages; `outbound`: the replies."),
    query("since", {"type": "string", "format": "date-time"}, "Created at or after (with a timezone)."),
    query("until", {"type": "string", "format": "date-time"}, "Created before; later than `since`."),
    query(
        "order",
        {"type": "string", "enum": ["newest", "sequence"], "default": "newest"},
        "`newest` first, or `sequence`: one conversation in order (needs `conversation_id`).",
    ),
    {"$ref": "#/components/parameters/Limit"},
    {"$ref": "#/components/parameters/Cursor"},
]

MESSAGE_ID: JsonSchema = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "description": "The message's id (a whole number); anything else names nothing (404).",
    "schema": {"type": "integer", "minimum": 1},
}

#: Why a retry is refused (409): the `code` of the error, and what it means.
RETRY_REFUSALS = {
    conversations.CONVERSATION_ARCHIVED: "the message's conversation is archived",
    conversations.OUTSIDE_SERVICE_WINDOW: "the customer's service window is closed",
    conversations.CHANNEL_REMOVED: "the conversation's channel was removed",
    conversations.NO_AGENT_NOW: "a customer's message, and the channel has no agent to answer it",
    turns.CHANNEL_UNAVAILABLE: "a reply, and the channel's platform is unavailable now",
    conversations.REPLY_IN_PROGRESS: "a reply, and the worker is still sending the rest of it",
    messages.NOT_RETRYABLE: "a reply whose send was interrupted: it may have gone out, so it is never sent again",
}

_MESSAGE = entity_schema(Message, description="A customer's message (inbound) or a reply part (outbound).")

SCHEMAS: dict[str, JsonSchema] = {
    "Message": _MESSAGE,
    "MessagePage": closed(
        {
            "messages": {"type": "array", "items": ref("Message")},
            "next_cursor": nullable({"type": "integer", "description": "Pass as `cursor` for the next page."}),
        }
    ),
    "RetriedMessage": closed(
        {
            **_MESSAGE["properties"],
            "retried": {
                "type": "boolean",
                "description": "True when this request retried it; false when it was not failed (nothing done).",
            },
        },
        description="The message as it is after the retry.",
    ),
}

_REFUSED = answer(
    "The retry cannot succeed now; nothing changed. `code`: "
    + "; ".join(f"`{code}`: {meaning}" for code, meaning in RETRY_REFUSALS.items())
    + ".",
    ref("Error"),
)

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
    "/users/{user_id}/messages/{message_id}/retry": {
        "post": operation(
            "retry_message",
            "Retry a failed message",
            tag="messages",
            parameters=[USER_ID, MESSAGE_ID],
            responses={"200": answer("The message after the retry.", ref("RetriedMessage")), "409": _REFUSED},
            error_statuses=COMMON_ERRORS,
            description=(
                "A failed customer's message is queued to be answered again; a failed reply part is sent "
                "again within the request: the AI's within the service window, a person's within the "
                "channel's human window (Instagram: 7 days, with the HUMAN_AGENT tag after 24 hours). "
                "Idempotent: a message that is not failed is left as it is (`retried: false`). No body "
                "(one sent is ignored)."
            ),
        )
    },
}
