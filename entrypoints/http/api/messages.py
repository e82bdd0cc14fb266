"""A tenant's messages, both directions, filtered and paginated with a keyset cursor."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from application.use_cases.retry_message import RetryMessageCommand
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.conversations import path_id
from entrypoints.http.api.payloads import message_query, messages_page_json, retried_message_json
from entrypoints.http.services import container

messages = Blueprint("messages", __name__)


@messages.get("/users/<id:user_id>/messages")
def list_messages(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    query = message_query(request.args)
    return jsonify(messages_page_json(container().tenant_queries().messages(user_id, query)))


@messages.post("/users/<id:user_id>/messages/<id:message_id>/retry")
def retry_message(user_id: str, message_id: str) -> ResponseReturnValue:
    """Idempotent: a message that is not failed (any more) is left alone, and the answer says so."""
    caller_for(user_id)
    command = RetryMessageCommand(user_id, path_id(message_id, "message"), g.get("correlation_id"))
    outcome = container().retry_message()(command)
    return jsonify(retried_message_json(outcome.message, retried=outcome.retried))
