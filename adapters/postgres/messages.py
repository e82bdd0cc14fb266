"""Messages in PostgreSQL: the listing the management API pages through."""

from __future__ import annotations

from psycopg import sql

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
from application.ports.repositories import MessageQuery, Page
from domain.errors import ValidationFailed
from domain.messages import Message

MESSAGE_COLUMNS = (
    "message_id, user_id, conversation_id, phone_number_id, direction, sender, sequence_no, platform_message_id, "
    "content_type, text, status, failure_reason, failure_code, turn_id, input_tokens, output_tokens, sent_at, "
    "created_at, updated_at"
)

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
