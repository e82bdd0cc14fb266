"""A conversation's bot control: a person from the team takes it over, or gives it back to the AI.

`conversation_json` is the one JSON shape of a conversation, shared with the conversation listings.
"""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from application.use_cases.control_conversation_bot import ControlConversationBotCommand
from application.use_cases.send_human_reply import SendHumanReplyCommand
from domain import limits
from domain.channels import BotState
from domain.conversations import Conversation
from domain.errors import NotFound
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import JsonObject, _bounded, idempotency_key, message_json, read_body
from entrypoints.http.services import container

conversations = Blueprint("conversations", __name__)


@frozen
class HumanReplyRequest:
    text: str = field(metadata=_bounded(limits.HUMAN_REPLY_TEXT))
    pause: bool = True


@frozen
class UpdateConversationRequest:
    bot: BotState
    resume_after_minutes: int | None = None


def conversation_json(conversation: Conversation) -> JsonObject:
    """What the API shows of a conversation (not its AI-side ids, which are ours)."""
    return {
        "conversation_id": conversation.conversation_id,
        "phone_number_id": conversation.phone_number_id,
        "agent_id": conversation.agent_id,
        "customer_id": conversation.customer_id,
        "customer_name": conversation.customer_name,
        "is_active": conversation.is_active,
        "bot": conversation.bot.value,
        "bot_paused_until": _iso(conversation.bot_paused_until),
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat(),
    }


def conversation_id_from(path_value: str) -> int:
    """A conversation id of the path: digits only, else it names no conversation (404)."""
    if not (path_value.isascii() and path_value.isdigit()) or len(path_value) > 18:
        raise NotFound(f"conversation {path_value} not found")
    return int(path_value)


@conversations.patch("/users/<id:user_id>/conversations/<id:conversation_id>")
def update_conversation(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = conversation_id_from(conversation_id)
    body = read_body(UpdateConversationRequest)
    command = ControlConversationBotCommand(
        user_id=user_id, conversation_id=number, bot=body.bot, resume_after_minutes=body.resume_after_minutes
    )
    return jsonify(conversation_json(container().control_conversation_bot()(command)))


@conversations.post("/users/<id:user_id>/conversations/<id:conversation_id>/messages")
def send_message(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = conversation_id_from(conversation_id)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    body = read_body(HumanReplyRequest)
    command = SendHumanReplyCommand(
        user_id=user_id, conversation_id=number, text=body.text, pause=body.pause, idempotency_key=key
    )
    result = container().send_human_reply()(command)
    return jsonify(messages=[message_json(part) for part in result.parts]), 200 if result.replayed else 201


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
