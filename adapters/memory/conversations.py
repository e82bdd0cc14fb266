"""Conversations in memory (opened by the message store when a customer first writes)."""

from __future__ import annotations

from datetime import datetime

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from application.ports.repositories import ConversationCursor, ConversationPage, ConversationQuery
from domain.conversations import Conversation
from domain.messages import Direction, Message, MessageStatus
from domain.turns import StatusChange


class InMemoryConversationsRepository(InMemoryRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        return self.t.conversations.get(conversation_id)

    def lock(self, user_id: str, conversation_id: int) -> Conversation | None:
        # The unit of work holds the store's lock: nothing else changes meanwhile.
        conversation = self.t.conversations.get(conversation_id)
        return conversation if conversation is not None and conversation.user_id == user_id else None

    def save_bot(self, conversation: Conversation) -> None:
        current = self.t.conversations[conversation.conversation_id]
        self.t.conversations[conversation.conversation_id] = evolve(
            current, bot=conversation.bot, bot_paused_until=conversation.bot_paused_until
        )

    def held(self, conversation_id: int) -> list[Message]:
        found = [
            m
            for m in self.t.messages.values()
            if m.conversation_id == conversation_id and m.status is MessageStatus.HELD
        ]
        return sorted(found, key=lambda m: m.sequence_no)

    def last_reply_sequence_no(self, conversation_id: int) -> int:
        return max(
            (
                m.sequence_no
                for m in self.t.messages.values()
                if m.conversation_id == conversation_id and m.direction is Direction.OUTBOUND
            ),
            default=0,
        )

    def holding(self, phone_number_id: str) -> list[int]:
        return sorted(
            {
                m.conversation_id
                for m in self.t.messages.values()
                if m.phone_number_id == phone_number_id and m.status is MessageStatus.HELD
            }
        )

    def change_status(self, change: StatusChange, now: datetime) -> None:
        self.t.change_status(change, now)

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
    if query.bot is not None and conversation.bot is not query.bot:
        return False
    return query.is_active is None or conversation.is_active is query.is_active
