"""A tenant deletes an agent: it is unlinked (its active conversations archived) and kept as history."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from application.relinking import after_relink, channels_of, save_relink
from application.routes import ChannelRoutes
from domain.errors import NotFound
from domain.messages import OrderingScope
from domain.relink import relink


@frozen
class DeleteAgentCommand:
    user_id: str
    agent_id: str


class DeleteAgent:
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

    def __call__(self, command: DeleteAgentCommand) -> None:
        now = self._clock.now()
        with self._uow() as uow:
            agent = uow.agents.get(command.user_id, command.agent_id)
            if agent is None:
                raise NotFound(f"agent {command.agent_id} not found")
            moves = relink(agent, agent.delete(now), None)
            done, opened = save_relink(uow, moves, now)
            uow.commit()
        after_relink(done, opened, channels_of(moves), self._routes, self._queue, self._ordering)
