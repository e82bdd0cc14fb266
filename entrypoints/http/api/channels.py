"""A tenant's channels (`phone_numbers`): WhatsApp numbers, Instagram accounts, web chat widgets."""

from __future__ import annotations

from attrs import field, frozen
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from application.use_cases.delete_channel import DeleteChannelCommand
from application.use_cases.update_channel import UpdateChannelCommand
from domain import limits
from domain.channels import BotState
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import AddChannelRequest, _bounded, channel_json, read_body
from entrypoints.http.services import container

channels = Blueprint("channels", __name__)


@frozen
class UpdateChannelRequest:
    """Every field is optional: what is absent (or null) stays as it is."""

    display_name: str | None = field(default=None, metadata=_bounded(limits.DISPLAY_NAME))
    access_token: str | None = field(default=None, metadata=_bounded(limits.ACCESS_TOKEN))
    bot: BotState | None = None
    allowed_origins: tuple[str, ...] | None = None

    def command(self, user_id: str, phone_number_id: str) -> UpdateChannelCommand:
        return UpdateChannelCommand(
            user_id=user_id,
            phone_number_id=phone_number_id,
            display_name=self.display_name,
            access_token=self.access_token,
            bot=self.bot,
            allowed_origins=self.allowed_origins,
        )


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


@channels.patch("/users/<id:user_id>/phone_numbers/<id:phone_number_id>")
def update_phone_number(user_id: str, phone_number_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    command = read_body(UpdateChannelRequest).command(user_id, phone_number_id)
    return jsonify(channel_json(container().update_channel()(command)))


@channels.delete("/users/<id:user_id>/phone_numbers/<id:phone_number_id>")
def delete_phone_number(user_id: str, phone_number_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    container().delete_channel()(DeleteChannelCommand(user_id=user_id, phone_number_id=phone_number_id))
    return "", 204
