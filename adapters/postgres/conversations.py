"""Conversations in PostgreSQL (created by `PostgresMessagesRepository.record_inbound`)."""

from __future__ import annotations

from typing import Any

from adapters.postgres._sql import PostgresRepository
from domain.messages import Conversation

_CONVERSATION_COLUMNS = (
    "conversation_id, user_id, agent_id, phone_number_id, customer_id, customer_name, openai_conversation_id, "
    "openai_last_item_id, is_active, created_at, last_message_at, last_customer_message_at"
)


def _conversation(row: dict[str, Any]) -> Conversation:
    return Conversation(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        phone_number_id=row["phone_number_id"],
        customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        openai_conversation_id=row["openai_conversation_id"],
        openai_last_item_id=row["openai_last_item_id"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        last_message_at=row["last_message_at"],
        last_customer_message_at=row["last_customer_message_at"],
    )


class PostgresConversationsRepository(PostgresRepository):
    def get(self, conversation_id: int) -> Conversation | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = %s", (conversation_id,)
            )
            .fetchone()
        )
        return None if row is None else _conversation(row)

    def set_openai_conversation(self, conversation_id: int, openai_conversation_id: str) -> None:
        self._cursor().execute(
            "UPDATE conversations SET openai_conversation_id = %s WHERE conversation_id = %s",
            (openai_conversation_id, conversation_id),
        )

    def set_openai_last_item(self, conversation_id: int, item_id: str | None) -> None:
        self._cursor().execute(
            "UPDATE conversations SET openai_last_item_id = %s WHERE conversation_id = %s", (item_id, conversation_id)
        )
