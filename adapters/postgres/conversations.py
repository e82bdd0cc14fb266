"""Conversations in PostgreSQL (opened by the message store when a customer first writes)."""

from __future__ import annotations

from psycopg import sql

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
from application.ports.repositories import ConversationCursor, ConversationPage, ConversationQuery
from domain.conversations import Conversation

CONVERSATION_COLUMNS = (
    "conversation_id, user_id, agent_id, phone_number_id, customer_id, customer_name, openai_conversation_id, "
    "openai_last_item_id, is_active, last_sequence_no, created_at, last_message_at, last_customer_message_at"
)


class PostgresConversationsRepository(PostgresRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        row = (
            self._cursor()
            .execute(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = %s", (conversation_id,))
            .fetchone()
        )
        return None if row is None else entity(row, Conversation)

    def list(self, user_id: str, query: ConversationQuery) -> ConversationPage:
        """Newest activity first, keyset-paginated on (`last_message_at`, `conversation_id`)."""
        conditions = [sql.SQL("user_id = %(user_id)s")]
        if query.phone_number_id is not None:
            conditions.append(sql.SQL("phone_number_id = %(phone_number_id)s"))
        if query.customer_id is not None:
            conditions.append(sql.SQL("customer_id = %(customer_id)s"))
        if query.is_active is not None:
            conditions.append(sql.SQL("is_active = %(is_active)s"))
        if query.cursor is not None:
            conditions.append(sql.SQL("(last_message_at, conversation_id) < (%(after_at)s, %(after_id)s)"))
        statement = sql.SQL(
            "SELECT {columns} FROM conversations WHERE {conditions}"
            " ORDER BY last_message_at DESC, conversation_id DESC LIMIT %(limit)s"
        ).format(columns=sql.SQL(CONVERSATION_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
        cursor = query.cursor
        rows = (
            self._cursor()
            .execute(
                statement,
                {
                    "user_id": user_id,
                    "phone_number_id": query.phone_number_id,
                    "customer_id": query.customer_id,
                    "is_active": query.is_active,
                    "after_at": None if cursor is None else cursor.last_message_at,
                    "after_id": None if cursor is None else cursor.conversation_id,
                    # One more than asked tells whether there is a next page without a count query.
                    "limit": query.limit + 1,
                },
                prepare=False,
            )
            .fetchall()
        )
        items = [entity(row, Conversation) for row in rows[: query.limit]]
        last = items[-1] if len(rows) > query.limit else None
        return ConversationPage(
            items=items,
            next_cursor=None if last is None else ConversationCursor(last.last_message_at, last.conversation_id),
        )
