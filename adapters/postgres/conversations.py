"""Conversations in PostgreSQL (opened by the message store when a customer first writes)."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.messages import MESSAGE_COLUMNS
from adapters.postgres.rows import entity
from application.ports.repositories import ConversationCursor, ConversationPage, ConversationQuery
from domain.conversations import Conversation
from domain.messages import Message
from domain.turns import StatusChange

CONVERSATION_COLUMNS = (
    "conversation_id, user_id, agent_id, phone_number_id, customer_id, customer_name, openai_conversation_id, "
    "openai_last_item_id, is_active, last_sequence_no, created_at, last_message_at, last_customer_message_at, bot, "
    "bot_paused_until, ai_seen_sequence_no"
)


class PostgresConversationsRepository(PostgresRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        row = (
            self._cursor()
            .execute(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = %s", (conversation_id,))
            .fetchone()
        )
        return None if row is None else entity(row, Conversation)

    def lock(self, user_id: str, conversation_id: int) -> Conversation | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = %s AND user_id = %s"
                " FOR UPDATE",
                (conversation_id, user_id),
            )
            .fetchone()
        )
        return None if row is None else entity(row, Conversation)

    def save_bot(self, conversation: Conversation) -> None:
        self._cursor().execute(
            "UPDATE conversations SET bot = %s, bot_paused_until = %s WHERE conversation_id = %s",
            (conversation.bot.value, conversation.bot_paused_until, conversation.conversation_id),
        )

    def held(self, conversation_id: int) -> list[Message]:
        rows = self._cursor().execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND status = 'held'"
            " ORDER BY sequence_no",
            (conversation_id,),
        )
        return [entity(row, Message) for row in rows]

    def last_reply_sequence_no(self, conversation_id: int) -> int:
        row = (
            self._cursor()
            .execute(
                "SELECT coalesce(max(sequence_no), 0) AS last FROM messages"
                " WHERE conversation_id = %s AND direction = 'outbound'",
                (conversation_id,),
            )
            .fetchone()
        )
        return int(row["last"]) if row is not None else 0

    def holding(self, phone_number_id: str) -> list[int]:
        rows = self._cursor().execute(
            "SELECT DISTINCT conversation_id FROM messages WHERE phone_number_id = %s AND status = 'held'"
            " ORDER BY conversation_id",
            (phone_number_id,),
        )
        return [row["conversation_id"] for row in rows]

    def change_status(self, change: StatusChange, now: datetime) -> None:
        # The conversation leads the condition: for the ids alone, the plan PostgreSQL keeps for the prepared
        # statement may be a sequential scan of `messages` (see `_batch_change` in turn_store.py).
        self._cursor().execute(
            "UPDATE messages SET status = %s, failure_reason = %s, updated_at = %s"
            " WHERE conversation_id = %s AND message_id = ANY(%s) AND direction = 'inbound' AND status = %s",
            (
                change.after.value,
                change.reason,
                now,
                change.conversation_id,
                list(change.message_ids),
                change.before.value,
            ),
        )

    def list(self, user_id: str, query: ConversationQuery) -> ConversationPage:
        """Newest activity first, keyset-paginated on (`last_message_at`, `conversation_id`)."""
        conditions = [sql.SQL("user_id = %(user_id)s")]
        if query.phone_number_id is not None:
            conditions.append(sql.SQL("phone_number_id = %(phone_number_id)s"))
        if query.customer_id is not None:
            conditions.append(sql.SQL("customer_id = %(customer_id)s"))
        if query.is_active is not None:
            conditions.append(sql.SQL("is_active = %(is_active)s"))
        if query.bot is not None:
            conditions.append(sql.SQL("bot = %(bot)s"))
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
                    "bot": None if query.bot is None else query.bot.value,
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
