"""A tenant changes a channel: its name, its access token (rotation), or whether the bot answers on it.

Resuming a channel's bot gives back to the AI what its conversations held meanwhile (those whose own bot
is active); the route cache forgets the channel after every change, so the webhook and the workers see it.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.held_messages import queue_released, release_if_answering
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from application.routes import ChannelRoutes
from domain.channels import BotState
from domain.errors import NotFound
from domain.handoff import BotResumed
from domain.messages import OrderingScope
from domain.tenancy import Channel


@frozen
class UpdateChannelCommand:
    user_id: str
    phone_number_id: str
    display_name: str | None = None
    access_token: str | None = None
    bot: BotState | None = None
    allowed_origins: tuple[str, ...] | None = None


class UpdateChannel:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        routes: ChannelRoutes,
        queue: JobQueue,
        clock: Clock,
        ordering: OrderingScope,
    ) -> None:
        self._uow = uow
        self._routes = routes
        self._queue = queue
        self._clock = clock
        self._ordering = ordering

    def __call__(self, command: UpdateChannelCommand) -> Channel:
        now = self._clock.now()
        released: list[BotResumed] = []
        with self._uow() as uow:
            channel = uow.channels.lock(command.user_id, command.phone_number_id)
            if channel is None:
                raise NotFound(f"phone number {command.phone_number_id} not found")
            changed = channel.update(
                display_name=command.display_name,
                access_token=command.access_token,
                bot=command.bot,
                allowed_origins=command.allowed_origins,
            )
            uow.channels.update(changed)
            if channel.bot is BotState.PAUSED and changed.bot is BotState.ACTIVE:
                for conversation_id in uow.conversations.holding(changed.phone_number_id):
                    conversation = uow.conversations.lock(command.user_id, conversation_id)
                    if conversation is None:
                        continue
                    resumed = release_if_answering(uow, conversation, changed.bot, now)
                    if resumed is not None:
                        released.append(resumed)
            uow.commit()
        self._routes.forget(changed.phone_number_id)
        for resumed in released:
            queue_released(self._queue, self._ordering, resumed)
        return changed
