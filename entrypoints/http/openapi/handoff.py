"""The hand-off: `PATCH /users/{user_id}/conversations/{conversation_id}` pauses or resumes the AI in one
conversation, and `POST …/conversations/{conversation_id}/messages` sends a person's reply.

The GET of the same conversation path is documented with the conversations listing; the assembler
(`openapi/__init__.py`) merges the two modules' operations on that path method by method.
"""

from __future__ import annotations

from domain import limits
from entrypoints.http.api.conversations import HumanReplyRequest, UpdateConversationRequest
from entrypoints.http.openapi.components import (
    BODY_ERRORS,
    COMMON_ERRORS,
    ERROR,
    USER_ID,
    answer,
    correlation_header,
    json_content,
    operation,
)
from entrypoints.http.openapi.schemas import JsonSchema, ref, request_schema

CONVERSATION_ID: JsonSchema = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "The conversation's id (an integer); anything else names nothing (404).",
    "schema": {"type": "integer", "minimum": 1},
}


def _update_conversation_request() -> JsonSchema:
    body = request_schema(
        UpdateConversationRequest,
        description=(
            "`bot: paused` stops the AI answering this conversation (a customer's messages are kept as "
            "`held`), `active` hands it back (the held messages are answered). `resume_after_minutes` "
            "(with `paused` only) ends the pause by itself."
        ),
    )
    body["properties"]["resume_after_minutes"].update({"minimum": 1, "maximum": limits.PAUSE_MINUTES})
    return body


def _channel_refused_error() -> JsonSchema:
    """The one error body with an addition: which stored message the channel refused."""
    error = ERROR["properties"]["error"]
    with_message = {
        **error,
        "properties": {
            **error["properties"],
            "message_id": {"type": "integer", "description": "The reply part stored as failed."},
        },
        "required": [*error["required"], "message_id"],
    }
    return {
        **ERROR,
        "properties": {"error": with_message},
        "description": "`channel_refused`: the error body, with the `message_id` of the part stored as failed.",
    }


SCHEMAS: dict[str, JsonSchema] = {
    # `Conversation` is described with the listing (conversations.py).
    "UpdateConversationRequest": _update_conversation_request(),
    "HumanReplyRequest": request_schema(
        HumanReplyRequest,
        description="A person's reply, sent as is; `pause` (default true) pauses the AI in the conversation.",
    ),
    "HumanReply": {
        "type": "object",
        "properties": {"messages": {"type": "array", "items": ref("Message"), "minItems": 1}},
        "required": ["messages"],
        "additionalProperties": False,
        "description": "The reply as sent: one message (`sender: human`) per part the channel's length bound needed.",
    },
    "ChannelRefusedError": _channel_refused_error(),
}

_CHANNEL_REFUSED: JsonSchema = {
    "description": (
        "The channel's platform refused the reply (`channel_refused`): it is stored as failed, `message_id` "
        "names it, and it can be sent again later."
    ),
    "headers": {"X-Correlation-Id": correlation_header()},
    "content": json_content(ref("ChannelRefusedError")),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/conversations/{conversation_id}": {
        "patch": operation(
            "update_conversation",
            "Pause or resume the AI in a conversation",
            tag="conversations",
            parameters=[USER_ID, CONVERSATION_ID],
            body=ref("UpdateConversationRequest"),
            responses={"200": answer("The conversation as it is now.", ref("Conversation"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description=(
                "An archived conversation cannot be paused or resumed (409 `conversation_archived`); "
                "`resume_after_minutes` out of 1…" + str(limits.PAUSE_MINUTES) + " or without `paused` is 422."
            ),
        ),
    },
    "/users/{user_id}/conversations/{conversation_id}/messages": {
        "post": operation(
            "send_message",
            "Send a person's reply to the customer",
            tag="conversations",
            parameters=[USER_ID, CONVERSATION_ID, {"$ref": "#/components/parameters/IdempotencyKey"}],
            body=ref("HumanReplyRequest"),
            responses={
                "201": answer("The reply, sent.", ref("HumanReply")),
                "200": answer(
                    "The reply first sent with this Idempotency-Key; nothing was sent again.", ref("HumanReply")
                ),
                "502": _CHANNEL_REFUSED,
            },
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description=(
                "409: the conversation is archived (`conversation_archived`) or the channel's service window "
                "has closed (`outside_service_window`); 404 also when its channel was deleted."
            ),
        ),
    },
}
