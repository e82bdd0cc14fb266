"""A tenant puts an OpenAI dashboard prompt on one of its channels."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator
from application.routes import ChannelRoutes
from domain.errors import NotFound, ValidationFailed
from domain.tenancy import Agent


@frozen
class CreateAgentCommand:
    user_id: str
    name: str
    prompt_id: str
    phone_number_id: str
    prompt_version: str | None = None


class CreateAgent:
    def __init__(self, uow: Callable[[], UnitOfWork], routes: ChannelRoutes, ids: IdGenerator, clock: Clock) -> None:
        self._uow = uow
        self._routes = routes
        self._ids = ids
        self._clock = clock

    def __call__(self, command: CreateAgentCommand) -> Agent:
        name = command.name.strip()
        prompt_id = command.prompt_id.strip()
        if not name:
            raise ValidationFailed("name must not be empty", field="name")
        if not prompt_id.startswith("pmpt_"):
            raise ValidationFailed("prompt_id must be an OpenAI prompt id (pmpt_…)", field="prompt_id")
        agent = Agent(
            agent_id=self._ids.new_id("agt"),
            user_id=command.user_id,
            phone_number_id=command.phone_number_id,
            name=name,
            prompt_id=prompt_id,
            prompt_version=(command.prompt_version or "").strip() or None,
            created_at=self._clock.now(),
        )
        with self._uow() as uow:
            if uow.channels.get(command.user_id, command.phone_number_id) is None:
                raise NotFound(f"channel {command.phone_number_id} not found", field="phone_number_id")
            uow.agents.add(agent)
            uow.commit()
        self._routes.forget(agent.phone_number_id)
        return agent
