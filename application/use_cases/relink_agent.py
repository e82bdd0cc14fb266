"""A tenant changes an agent: its name, prompt or extraction prompt (next turn on), or the channel it answers
(RelinkAgent).

Linking an agent to a channel another agent holds unlinks that one, in one transaction; every agent
leaving a channel archives its active conversations there (see `domain.relink` for what happens to
a turn in flight and the messages not answered yet).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from application.relinking import after_relink, channels_of, save_relink
from application.routes import ChannelRoutes
from domain.errors import NotFound
from domain.messages import OrderingScope
from domain.relink import relink
from domain.tenancy import Agent

T = TypeVar("T")


class Keep(enum.Enum):
    """A field of the command that was not given: it stays as it is."""

    UNCHANGED = "unchanged"


UNCHANGED = Keep.UNCHANGED


@frozen
class RelinkAgentCommand:
    user_id: str
    agent_id: str
    name: str | Keep = UNCHANGED
    prompt_id: str | Keep = UNCHANGED
    #: None: the prompt's latest version.
    prompt_version: str | Keep | None = UNCHANGED
    #: None: unlink the agent from its channel.
    phone_number_id: str | Keep | None = UNCHANGED
    #: None: the built-in extraction instructions.
    extraction_prompt_id: str | Keep | None = UNCHANGED


class RelinkAgent:
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

    def __call__(self, command: RelinkAgentCommand) -> Agent:
        now = self._clock.now()
        with self._uow() as uow:
            agent = uow.agents.get(command.user_id, command.agent_id)
            if agent is None:
                raise NotFound(f"agent {command.agent_id} not found")
            after = agent.edit(
                name=_given(command.name, agent.name),
                prompt_id=_given(command.prompt_id, agent.prompt_id),
                prompt_version=_given(command.prompt_version, agent.prompt_version),
            )
            if not isinstance(command.extraction_prompt_id, Keep):
                after = after.extract_with(command.extraction_prompt_id)
            holder = None
            target = command.phone_number_id
            if not isinstance(target, Keep):
                target = target.strip() if target is not None else None
                if target is not None and uow.channels.get(command.user_id, target) is None:
                    raise NotFound(f"channel {target} not found", field="phone_number_id")
                after = after.link(target)
                holder = None if target is None else uow.agents.holder(target)
            moves = relink(agent, after, holder)
            done, opened = save_relink(uow, moves, now)
            uow.commit()
        after_relink(done, opened, channels_of(moves), self._routes, self._queue, self._ordering)
        return after


def _given(value: T | Keep, current: T) -> T:
    return current if isinstance(value, Keep) else value
