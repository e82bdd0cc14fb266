"""A tenant connects a channel: a WhatsApp number, an Instagram account or a web chat widget."""

from __future__ import annotations

from collections.abc import Callable

from attrs import field, frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator
from application.routes import ChannelRoutes
from domain.channels import ChannelType
from domain.errors import NotFound, ValidationFailed
from domain.tenancy import Channel


@frozen
class AddChannelCommand:
    user_id: str
    type: ChannelType
    external_number: str
    access_token: str | None = field(default=None, repr=False)  # a command in a traceback must not carry it
    phone_number_id: str | None = None
    display_name: str | None = None
    allowed_origins: tuple[str, ...] | None = None


class AddChannel:
    def __init__(self, uow: Callable[[], UnitOfWork], routes: ChannelRoutes, ids: IdGenerator, clock: Clock) -> None:
        self._uow = uow
        self._routes = routes
        self._ids = ids
        self._clock = clock

    def __call__(self, command: AddChannelCommand) -> Channel:
        phone_number_id = (command.phone_number_id or "").strip()
        access_token = (command.access_token or "").strip()
        if command.type is ChannelType.WEBCHAT:
            # The widget has no Meta id or token of its own; its id is ours to give.
            phone_number_id = phone_number_id or self._ids.new_id("wc")
        else:
            if not phone_number_id:
                raise ValidationFailed(
                    f"phone_number_id is required for {command.type} channels", field="phone_number_id"
                )
            if not access_token:
                raise ValidationFailed(f"access_token is required for {command.type} channels", field="access_token")
        if not command.external_number.strip():
            raise ValidationFailed("external_number must not be empty", field="external_number")
        channel = Channel(
            phone_number_id=phone_number_id,
            user_id=command.user_id,
            type=command.type,
            external_number=command.external_number.strip(),
            access_token=access_token,
            display_name=(command.display_name or "").strip() or None,
            created_at=self._clock.now(),
        )
        if command.allowed_origins is not None:
            channel = channel.update(allowed_origins=command.allowed_origins)
        with self._uow() as uow:
            if uow.users.get(command.user_id) is None:
                raise NotFound(f"user {command.user_id} not found")
            uow.channels.add(channel)
            uow.commit()
        self._routes.forget(channel.phone_number_id)
        return channel
