"""Conversations in memory (opened by the message store when a customer first writes)."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from domain.conversations import Conversation


class InMemoryConversationsRepository(InMemoryRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        return self.t.conversations.get(conversation_id)
