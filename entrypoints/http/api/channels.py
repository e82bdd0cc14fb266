"""A tenant's channels (`phone_numbers`): WhatsApp numbers, Instagram accounts, web chat widgets."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from application.use_cases.delete_channel import DeleteChannelCommand
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import AddChannelRequest, channel_json, read_body
from entrypoints.http.services import container

channels = Blueprint("channels", __name__)


@channels.get("/users/<id:user_id>/phone_numbers")
def list_phone_numbers(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    found = container().tenant_queries().channels(user_id)
    return jsonify(phone_numbers=[channel_json(channel) for channel in found])


@channels.post("/users/<id:user_id>/phone_numbers")
def add_phone_number(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    command = read_body(AddChannelRequest).command(user_id)
    return jsonify(channel_json(container().add_channel()(command))), 201


@channels.delete("/users/<id:user_id>/phone_numbers/<id:phone_number_id>")
def delete_phone_number(user_id: str, phone_number_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    container().delete_channel()(DeleteChannelCommand(user_id=user_id, phone_number_id=phone_number_id))
    return "", 204
