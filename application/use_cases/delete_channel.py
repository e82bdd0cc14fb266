"""A tenant deletes a channel: not listed any more, its agent unlinked (its active conversations there
archived), its later webhook deliveries ignored. Its history is kept."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from application.relinking import after_relink, save_relink
from application.routes import ChannelRoutes
from domain.errors import NotFound
from domain.messages import OrderingScope
from domain.relink import relink


@frozen
class DeleteChannelCommand:
    user_id: str
    phone_number_id: str


class DeleteChannel:
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

    def __call__(self, command: DeleteChannelCommand) -> None:
        now = self._clock.now()
        with self._uow() as uow:
            channel = uow.channels.get(command.user_id, command.phone_number_id)
            if channel is None:
                raise NotFound(f"channel {command.phone_number_id} not found")
            holder = uow.agents.holder(channel.phone_number_id)
            moves = () if holder is None else relink(holder, holder.link(None), None)
            done, opened = save_relink(uow, moves, now)
            uow.channels.save(channel.delete(now))
            uow.commit()
        after_relink(done, opened, {channel.phone_number_id}, self._routes, self._queue, self._ordering)
