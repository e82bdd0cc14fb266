"""A tenant's conversations: newest activity first, filtered, paginated with an opaque keyset cursor."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from attrs import field, frozen
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from application.ports.repositories import ConversationCursor, ConversationPage, ConversationQuery
from application.use_cases.control_conversation_bot import ControlConversationBotCommand
from application.use_cases.send_human_reply import SendHumanReplyCommand
from domain import limits
from domain.channels import BotState
from domain.conversations import Conversation
from domain.errors import NotFound
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    JsonObject,
    _bounded,
    bad_param,
    idempotency_key,
    int_param,
    message_json,
    read_body,
    text_param,
)
from entrypoints.http.services import container

conversations = Blueprint("conversations", __name__)

_STATES = {"active": True, "archived": False}
_BOT_STATES = frozenset(state.value for state in BotState)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"(\d{1,19})\.(\d{1,18})")


@conversations.get("/users/<id:user_id>/conversations")
def list_conversations(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    query = conversation_query(request.args)
    return jsonify(conversations_page_json(container().tenant_queries().conversations(user_id, query)))


@conversations.get("/users/<id:user_id>/conversations/<id:conversation_id>")
def get_conversation(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    found = container().tenant_queries().conversation(user_id, path_id(conversation_id, "conversation"))
    return jsonify(conversation_json(found))


def path_id(value: str, kind: str) -> int:
    """A numeric id from the path; anything else names nothing (404), like an unknown id."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound(f"{kind} {value} not found")
    return int(value)


def conversation_query(args: Mapping[str, str]) -> ConversationQuery:
    """GET /users/{id}/conversations parameters. Unknown parameters are ignored."""
    state = args.get("state")
    if state is not None and state not in _STATES:
        raise bad_param("state", f"state must be active or archived, got {state!r}")
    bot = args.get("bot")
    if bot is not None and bot not in _BOT_STATES:
        raise bad_param("bot", f"bot must be active or paused, got {bot!r}")
    limit = int_param(args, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
    return ConversationQuery(
        phone_number_id=text_param(args, "phone_number_id", limits.CHANNEL_ID),
        customer_id=text_param(args, "customer_id", limits.CUSTOMER_ID),
        is_active=None if state is None else _STATES[state],
        bot=None if bot is None else BotState(bot),
        cursor=_cursor(args.get("cursor")),
        limit=DEFAULT_PAGE_SIZE if limit is None else limit,
    )


def _cursor(value: str | None) -> ConversationCursor | None:
    if value is None:
        return None
    match = _CURSOR.fullmatch(value) if value.isascii() else None
    if match is None:
        raise bad_param("cursor", "cursor must be the next_cursor of a previous page, as it was given")
    try:
        at = _EPOCH + timedelta(microseconds=int(match.group(1)))
    except OverflowError as error:
        raise bad_param("cursor", "cursor must be the next_cursor of a previous page, as it was given") from error
    return ConversationCursor(last_message_at=at, conversation_id=int(match.group(2)))


def cursor_text(cursor: ConversationCursor) -> str:
    """Opaque to clients: where the page ended, to the microsecond, and the conversation it ended on."""
    return f"{(cursor.last_message_at - _EPOCH) // timedelta(microseconds=1)}.{cursor.conversation_id}"


def conversation_json(conversation: Conversation) -> JsonObject:
    """What a tenant sees of a conversation. `openai_conversation_id` is shown: with it the business finds
    the conversation in OpenAI's dashboard when it tunes its prompt. The last AI item id is internal."""
    return {
        "conversation_id": conversation.conversation_id,
        "phone_number_id": conversation.phone_number_id,
        "agent_id": conversation.agent_id,
        "customer_id": conversation.customer_id,
        "customer_name": conversation.customer_name,
        "is_active": conversation.is_active,
        "openai_conversation_id": conversation.openai_conversation_id,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat(),
        "last_customer_message_at": _iso(conversation.last_customer_message_at),
        "last_sequence_no": conversation.last_sequence_no,
        "bot": conversation.bot.value,
        "bot_paused_until": _iso(conversation.bot_paused_until),
    }


def conversations_page_json(page: ConversationPage) -> JsonObject:
    return {
        "conversations": [conversation_json(conversation) for conversation in page.items],
        "next_cursor": None if page.next_cursor is None else cursor_text(page.next_cursor),
    }


@frozen
class HumanReplyRequest:
    text: str = field(metadata=_bounded(limits.HUMAN_REPLY_TEXT))
    pause: bool = True


@frozen
class UpdateConversationRequest:
    bot: BotState
    resume_after_minutes: int | None = None


@conversations.patch("/users/<id:user_id>/conversations/<id:conversation_id>")
def update_conversation(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = path_id(conversation_id, "conversation")
    body = read_body(UpdateConversationRequest)
    command = ControlConversationBotCommand(
        user_id=user_id, conversation_id=number, bot=body.bot, resume_after_minutes=body.resume_after_minutes
    )
    return jsonify(conversation_json(container().control_conversation_bot()(command)))


@conversations.post("/users/<id:user_id>/conversations/<id:conversation_id>/messages")
def send_message(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = path_id(conversation_id, "conversation")
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    body = read_body(HumanReplyRequest)
    command = SendHumanReplyCommand(
        user_id=user_id, conversation_id=number, text=body.text, pause=body.pause, idempotency_key=key
    )
    result = container().send_human_reply()(command)
    return jsonify(messages=[message_json(part) for part in result.parts]), 200 if result.replayed else 201


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
