"""Conversations in PostgreSQL (opened by the message store when a customer first writes)."""

from __future__ import annotations

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
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
