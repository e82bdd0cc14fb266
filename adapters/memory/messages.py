"""Messages in memory: the listing the management API pages through."""

from __future__ import annotations

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from application.ports.repositories import MessageQuery, Page
from domain.errors import Conflict, ValidationFailed
from domain.handoff import HumanReply
from domain.messages import Direction, Message, Sender


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

    def add_human_reply(self, reply: HumanReply, idempotency_key: str | None) -> tuple[Message, ...]:
        before, now = reply.before, reply.at
        if idempotency_key is not None and (before.conversation_id, idempotency_key) in self.t.reply_keys:
            raise Conflict("that Idempotency-Key was used in this conversation already", field="Idempotency-Key")
        parts = tuple(
            Message(
                message_id=self.t.next_id("messages"),
                user_id=before.user_id,
                conversation_id=before.conversation_id,
                phone_number_id=before.phone_number_id,
                direction=Direction.OUTBOUND,
                sender=Sender.HUMAN,
                sequence_no=before.last_sequence_no + n,
                platform_message_id=None,
                content_type="text",
                text=draft.text,
                status=draft.status,
                failure_reason=None,
                failure_code=None,
                turn_id=None,
                input_tokens=None,
                output_tokens=None,
                sent_at=None,
                created_at=now,
                updated_at=now,
            )
            for n, draft in enumerate(reply.parts, start=1)
        )
        self.t.messages.update((part.message_id, part) for part in parts)
        current = self.t.conversations[before.conversation_id]
        self.t.conversations[before.conversation_id] = evolve(
            current,
            last_sequence_no=reply.conversation.last_sequence_no,
            last_message_at=reply.conversation.last_message_at,
            bot=reply.conversation.bot,
            bot_paused_until=reply.conversation.bot_paused_until,
        )
        if idempotency_key is not None:
            self.t.reply_keys[(before.conversation_id, idempotency_key)] = tuple(p.message_id for p in parts)
        return parts

    def human_reply(self, conversation_id: int, idempotency_key: str) -> tuple[Message, ...]:
        ids = self.t.reply_keys.get((conversation_id, idempotency_key), ())
        return tuple(self.t.messages[message_id] for message_id in ids)

    def visitor_timeline(
        self, phone_number_id: str, customer_id: str, after: int | None, limit: int
    ) -> tuple[Message, ...]:
        conversations = {
            c.conversation_id
            for c in self.t.conversations.values()
            if c.phone_number_id == phone_number_id and c.customer_id == customer_id
        }
        found = sorted(
            (m for m in self.t.messages.values() if m.conversation_id in conversations),
            key=lambda m: m.message_id,
        )
        if after is None:
            return tuple(found[-limit:])
        return tuple(m for m in found if m.message_id > after)[:limit]


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
