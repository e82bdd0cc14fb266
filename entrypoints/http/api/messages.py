"""A tenant's messages, both directions, filtered and paginated with a keyset cursor."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import message_query, messages_page_json
from entrypoints.http.services import container

messages = Blueprint("messages", __name__)


@messages.get("/users/<id:user_id>/messages")
def list_messages(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    query = message_query(request.args)
    return jsonify(messages_page_json(container().tenant_queries().messages(user_id, query)))
