"""A tenant puts an OpenAI dashboard prompt on one of its channels (or on none yet)."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator
from application.routes import ChannelRoutes
from domain.errors import NotFound
from domain.tenancy import Agent


@frozen
class CreateAgentCommand:
    user_id: str
    name: str
    prompt_id: str
    phone_number_id: str | None = None
    prompt_version: str | None = None
    #: The OpenAI prompt that reads its conversations for lead data; None: the built-in instructions.
    extraction_prompt_id: str | None = None


class CreateAgent:
    def __init__(self, uow: Callable[[], UnitOfWork], routes: ChannelRoutes, ids: IdGenerator, clock: Clock) -> None:
        self._uow = uow
        self._routes = routes
        self._ids = ids
        self._clock = clock

    def __call__(self, command: CreateAgentCommand) -> Agent:
        phone_number_id = (command.phone_number_id or "").strip() or None
        agent = Agent(
            agent_id=self._ids.new_id("agt"),
            user_id=command.user_id,
            phone_number_id=phone_number_id,
            name=Agent.check_name(command.name),
            prompt_id=Agent.check_prompt_id(command.prompt_id),
            prompt_version=Agent.check_prompt_version(command.prompt_version),
            created_at=self._clock.now(),
        ).extract_with(command.extraction_prompt_id)
        with self._uow() as uow:
            if phone_number_id is None:
                if uow.users.get(command.user_id) is None:
                    raise NotFound(f"user {command.user_id} not found")
            elif uow.channels.get(command.user_id, phone_number_id) is None:
                raise NotFound(f"channel {phone_number_id} not found", field="phone_number_id")
            uow.agents.add(agent)
            uow.commit()
        if agent.phone_number_id is not None:
            self._routes.forget(agent.phone_number_id)
        return agent
