"""Agents in memory: at most one per channel, as the database's unique constraint has it."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from domain.errors import Conflict
from domain.tenancy import Agent


class InMemoryAgentsRepository(InMemoryRepository):
    def add(self, agent: Agent) -> None:
        if agent.agent_id in self.t.agents:
            raise Conflict(f"agent {agent.agent_id} exists already", field="agent_id")
        self._require_channel_free(agent)
        self.t.agents[agent.agent_id] = agent

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        agent = self.t.agents.get(agent_id)
        return agent if agent is not None and agent.user_id == user_id and agent.deleted_at is None else None

    def list(self, user_id: str) -> list[Agent]:
        return sorted(
            (a for a in self.t.agents.values() if a.user_id == user_id and a.deleted_at is None),
            key=lambda a: (a.created_at, a.agent_id),
        )

    def holder(self, phone_number_id: str) -> Agent | None:
        return next((a for a in self.t.agents.values() if a.phone_number_id == phone_number_id), None)

    def save(self, agent: Agent) -> None:
        self._require_channel_free(agent)
        self.t.agents[agent.agent_id] = agent

    def _require_channel_free(self, agent: Agent) -> None:
        if agent.phone_number_id is None:
            return
        if any(
            a.phone_number_id == agent.phone_number_id and a.agent_id != agent.agent_id for a in self.t.agents.values()
        ):
            raise Conflict(f"channel {agent.phone_number_id} already has an agent", field="phone_number_id")
