"""Agents in memory: at most one per channel, as the database's unique constraint has it."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from domain.errors import Conflict
from domain.tenancy import Agent


class InMemoryAgentsRepository(InMemoryRepository):
    def add(self, agent: Agent) -> None:
        if agent.agent_id in self.t.agents:
            raise Conflict(f"agent {agent.agent_id} exists already", field="agent_id")
        if any(a.phone_number_id == agent.phone_number_id for a in self.t.agents.values()):
            raise Conflict(f"channel {agent.phone_number_id} already has an agent", field="phone_number_id")
        self.t.agents[agent.agent_id] = agent

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        agent = self.t.agents.get(agent_id)
        return agent if agent is not None and agent.user_id == user_id else None

    def list(self, user_id: str) -> list[Agent]:
        return sorted(
            (a for a in self.t.agents.values() if a.user_id == user_id), key=lambda a: (a.created_at, a.agent_id)
        )
