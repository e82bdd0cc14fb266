"""Messages in PostgreSQL: the listing the management API pages through."""

from __future__ import annotations

from psycopg import sql

from adapters.postgres._sql import PostgresRepository, conflicts
from adapters.postgres.rows import entity
from application.ports.repositories import MessageQuery, Page
from domain.errors import ValidationFailed
from domain.handoff import HumanReply
from domain.messages import Message

MESSAGE_COLUMNS = (
    "message_id, user_id, conversation_id, phone_number_id, direction, sender, sequence_no, platform_message_id, "
    "content_type, text, status, failure_reason, failure_code, turn_id, input_tokens, output_tokens, sent_at, "
    "created_at, updated_at"
)

# A person's reply: the conversation numbered on (conditional on the number it was decided from; the
# unit of work holds the conversation's row lock), and the parts after it. The key goes on the first part.
_ADD_HUMAN_REPLY = f"""
WITH appended AS (
    UPDATE conversations
    SET last_sequence_no = %(last_sequence_no)s, last_message_at = %(last_message_at)s, bot = %(bot)s,
        bot_paused_until = %(bot_paused_until)s
    WHERE conversation_id = %(conversation_id)s AND last_sequence_no = %(before_sequence_no)s
    RETURNING conversation_id
), parts AS (
    INSERT INTO messages (
        user_id, conversation_id, phone_number_id, direction, sender, sequence_no, content_type, text, status,
        idempotency_key, created_at, updated_at)
    SELECT %(user_id)s, %(conversation_id)s, %(phone_number_id)s, 'outbound', 'human', %(before_sequence_no)s + part.n,
           'text', part.text, part.status, CASE WHEN part.n = 1 THEN %(idempotency_key)s END, %(now)s, %(now)s
    FROM appended, unnest(%(texts)s::text[], %(statuses)s::text[]) WITH ORDINALITY AS part(text, status, n)
    RETURNING {MESSAGE_COLUMNS}
)
SELECT {MESSAGE_COLUMNS} FROM parts ORDER BY sequence_no
"""

# The parts of one reply: the keyed first part and the person's parts numbered right after it in the same
# instant (a reply is stored at once).
_HUMAN_REPLY = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE conversation_id = %(conversation_id)s AND sender = 'human' AND direction = 'outbound'
  AND (sequence_no, created_at) >= ALL (
      SELECT sequence_no, created_at FROM messages
      WHERE conversation_id = %(conversation_id)s AND idempotency_key = %(idempotency_key)s)
  AND created_at = (
      SELECT created_at FROM messages
      WHERE conversation_id = %(conversation_id)s AND idempotency_key = %(idempotency_key)s)
ORDER BY sequence_no
"""

# A web chat visitor's messages across its conversations on the widget (conversations_channel_customer_idx,
# then each conversation's messages by the primary key).
_VISITOR_AFTER = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE conversation_id IN (
    SELECT conversation_id FROM conversations WHERE phone_number_id = %(channel)s AND customer_id = %(customer)s)
  AND message_id > %(after)s
ORDER BY message_id LIMIT %(limit)s
"""
_VISITOR_LATEST = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE conversation_id IN (
        SELECT conversation_id FROM conversations WHERE phone_number_id = %(channel)s AND customer_id = %(customer)s)
    ORDER BY message_id DESC LIMIT %(limit)s
) latest ORDER BY message_id
"""

_LIST_ORDERS = {
    "newest": (sql.SQL("message_id < %(cursor)s"), sql.SQL("message_id DESC"), "message_id"),
    "sequence": (sql.SQL("sequence_no > %(cursor)s"), sql.SQL("sequence_no"), "sequence_no"),
}


class PostgresMessagesRepository(PostgresRepository):
    def list(self, user_id: str, query: MessageQuery) -> Page[Message]:
        """Newest first (`message_id` descending), or in conversation order (`sequence_no`, which
        needs `conversation_id`). `since` is inclusive, `until` exclusive, both on `created_at`."""
        if query.order not in _LIST_ORDERS:
            raise ValidationFailed("order must be 'newest' or 'sequence'", field="order")
        if query.order == "sequence" and query.conversation_id is None:
            raise ValidationFailed("order 'sequence' needs a conversation_id", field="order")
        after, order_by, cursor_column = _LIST_ORDERS[query.order]
        conditions = [sql.SQL("user_id = %(user_id)s")]
        if query.phone_number_id is not None:
            conditions.append(sql.SQL("phone_number_id = %(phone_number_id)s"))
        if query.conversation_id is not None:
            conditions.append(sql.SQL("conversation_id = %(conversation_id)s"))
        if query.customer_id is not None:
            conditions.append(
                sql.SQL(
                    "conversation_id IN (SELECT conversation_id FROM conversations"
                    " WHERE user_id = %(user_id)s AND customer_id = %(customer_id)s)"
                )
            )
        if query.status is not None:
            conditions.append(sql.SQL("status = %(status)s"))
        if query.direction is not None:
            conditions.append(sql.SQL("direction = %(direction)s"))
        if query.since is not None:
            conditions.append(sql.SQL("created_at >= %(since)s"))
        if query.until is not None:
            conditions.append(sql.SQL("created_at < %(until)s"))
        if query.cursor is not None:
            conditions.append(after)
        statement = sql.SQL(
            "SELECT {columns} FROM messages WHERE {conditions} ORDER BY {order} LIMIT %(limit)s"
        ).format(columns=sql.SQL(MESSAGE_COLUMNS), conditions=sql.SQL(" AND ").join(conditions), order=order_by)
        rows = (
            self._cursor()
            .execute(
                statement,
                {
                    "user_id": user_id,
                    "phone_number_id": query.phone_number_id,
                    "conversation_id": query.conversation_id,
                    "customer_id": query.customer_id,
                    "status": None if query.status is None else query.status.value,
                    "direction": None if query.direction is None else query.direction.value,
                    "since": query.since,
                    "until": query.until,
                    "cursor": query.cursor,
                    # One more than asked tells whether there is a next page without a count query.
                    "limit": query.limit + 1,
                },
                # Never a prepared (possibly generic) plan: the best index depends on the values,
                # e.g. a narrow `until` far in the past wants messages_user_created_idx.
                prepare=False,
            )
            .fetchall()
        )
        items = [entity(row, Message) for row in rows[: query.limit]]
        next_cursor = rows[query.limit - 1][cursor_column] if len(rows) > query.limit else None
        return Page(items=items, next_cursor=next_cursor)

    def get(self, user_id: str, message_id: int) -> Message | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = %s AND user_id = %s", (message_id, user_id)
            )
            .fetchone()
        )
        return None if row is None else entity(row, Message)

    def add_human_reply(self, reply: HumanReply, idempotency_key: str | None) -> tuple[Message, ...]:
        before, after = reply.before, reply.conversation
        params = {
            "conversation_id": before.conversation_id,
            "user_id": before.user_id,
            "phone_number_id": before.phone_number_id,
            "before_sequence_no": before.last_sequence_no,
            "last_sequence_no": after.last_sequence_no,
            "last_message_at": after.last_message_at,
            "bot": after.bot.value,
            "bot_paused_until": after.bot_paused_until,
            "idempotency_key": idempotency_key,
            "texts": [part.text for part in reply.parts],
            "statuses": [part.status.value for part in reply.parts],
            "now": reply.at,
        }
        used = ("that Idempotency-Key was used in this conversation already", "Idempotency-Key")
        with conflicts({"messages_idempotency_uidx": used}):
            rows = self._cursor().execute(_ADD_HUMAN_REPLY, params).fetchall()
        if not rows:
            raise RuntimeError(f"conversation {before.conversation_id} moved on although it was locked")
        return tuple(entity(row, Message) for row in rows)

    def human_reply(self, conversation_id: int, idempotency_key: str) -> tuple[Message, ...]:
        rows = self._cursor().execute(
            _HUMAN_REPLY, {"conversation_id": conversation_id, "idempotency_key": idempotency_key}
        )
        return tuple(entity(row, Message) for row in rows)

    def visitor_timeline(
        self, phone_number_id: str, customer_id: str, after: int | None, limit: int
    ) -> tuple[Message, ...]:
        statement = _VISITOR_LATEST if after is None else _VISITOR_AFTER
        params = {"channel": phone_number_id, "customer": customer_id, "after": after, "limit": limit}
        return tuple(entity(row, Message) for row in self._cursor().execute(statement, params))
