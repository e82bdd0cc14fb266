"""Conversations in memory (opened by the message store when a customer first writes)."""

from __future__ import annotations

from datetime import datetime

from adapters.memory.repository import InMemoryRepository
from application.ports.repositories import ConversationCursor, ConversationPage, ConversationQuery
from domain.conversations import Conversation


class InMemoryConversationsRepository(InMemoryRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        return self.t.conversations.get(conversation_id)

    def list(self, user_id: str, query: ConversationQuery) -> ConversationPage:
        found = sorted(
            (c for c in self.t.conversations.values() if c.user_id == user_id and _matches(c, query)),
            key=_activity,
            reverse=True,
        )
        if query.cursor is not None:
            after = (query.cursor.last_message_at, query.cursor.conversation_id)
            found = [c for c in found if _activity(c) < after]
        items = found[: query.limit]
        last = items[-1] if len(found) > query.limit else None
        return ConversationPage(
            items=items,
            next_cursor=None if last is None else ConversationCursor(last.last_message_at, last.conversation_id),
        )


def _activity(conversation: Conversation) -> tuple[datetime, int]:
    return conversation.last_message_at, conversation.conversation_id


def _matches(conversation: Conversation, query: ConversationQuery) -> bool:
    if query.phone_number_id is not None and conversation.phone_number_id != query.phone_number_id:
        return False
    if query.customer_id is not None and conversation.customer_id != query.customer_id:
        return False
    return query.is_active is None or conversation.is_active is query.is_active
