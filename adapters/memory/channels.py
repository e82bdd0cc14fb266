"""Channels in memory, and the route (channel + agent) a webhook is answered through."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from domain.errors import Conflict
from domain.tenancy import Channel, Route


class InMemoryChannelsRepository(InMemoryRepository):
    def add(self, channel: Channel) -> None:
        existing = self.t.channels.get(channel.phone_number_id)
        if existing is not None and not (existing.deleted and existing.user_id == channel.user_id):
            raise Conflict(f"phone_number_id {channel.phone_number_id} is registered already", field="phone_number_id")
        self.t.channels[channel.phone_number_id] = channel

    def get(self, user_id: str, phone_number_id: str) -> Channel | None:
        channel = self.t.channels.get(phone_number_id)
        return channel if channel is not None and channel.user_id == user_id and not channel.deleted else None

    def list(self, user_id: str) -> list[Channel]:
        return sorted(
            (c for c in self.t.channels.values() if c.user_id == user_id and not c.deleted),
            key=lambda c: (c.created_at, c.phone_number_id),
        )

    def lock(self, user_id: str, phone_number_id: str) -> Channel | None:
        # The unit of work holds the store's lock: nothing else changes meanwhile.
        return self.get(user_id, phone_number_id)

    def update(self, channel: Channel) -> None:
        self.t.channels[channel.phone_number_id] = channel

    def route(self, phone_number_id: str) -> Route | None:
        channel = self.t.channels.get(phone_number_id)
        if channel is None:
            return None
        agent = next((a for a in self.t.agents.values() if a.phone_number_id == phone_number_id), None)
        return Route(channel=channel, agent=agent)

    def save(self, channel: Channel) -> None:
        self.t.channels[channel.phone_number_id] = channel
