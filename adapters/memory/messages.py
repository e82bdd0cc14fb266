"""Messages in memory: the listing the management API pages through."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from application.ports.repositories import MessageQuery, Page
from domain.errors import ValidationFailed
from domain.messages import Message


class InMemoryMessagesRepository(InMemoryRepository):
    def list(self, user_id: str, query: MessageQuery) -> Page[Message]:
        if query.order not in ("newest", "sequence"):
            raise ValidationFailed("order must be 'newest' or 'sequence'", field="order")
        if query.order == "sequence" and query.conversation_id is None:
            raise ValidationFailed("order 'sequence' needs a conversation_id", field="order")
        found = [m for m in self.t.messages.values() if m.user_id == user_id and _matches(m, query)]
        if query.customer_id is not None:
            found = [m for m in found if self.t.conversations[m.conversation_id].customer_id == query.customer_id]
        if query.order == "sequence":
            found.sort(key=lambda m: (m.conversation_id, m.sequence_no))
            if query.cursor is not None:
                found = [m for m in found if m.sequence_no > query.cursor]
        else:
            found.sort(key=lambda m: m.message_id, reverse=True)
            if query.cursor is not None:
                found = [m for m in found if m.message_id < query.cursor]
        items = found[: query.limit]
        next_cursor = None
        if len(found) > query.limit and items:
            next_cursor = items[-1].sequence_no if query.order == "sequence" else items[-1].message_id
        return Page(items=items, next_cursor=next_cursor)

    def get(self, user_id: str, message_id: int) -> Message | None:
        message = self.t.messages.get(message_id)
        return message if message is not None and message.user_id == user_id else None


def _matches(message: Message, query: MessageQuery) -> bool:
    if query.phone_number_id is not None and message.phone_number_id != query.phone_number_id:
        return False
    if query.conversation_id is not None and message.conversation_id != query.conversation_id:
        return False
    if query.status is not None and message.status is not query.status:
        return False
    if query.direction is not None and message.direction is not query.direction:
        return False
    if query.since is not None and message.created_at < query.since:
        return False
    return query.until is None or message.created_at < query.until
