"""AI turns in PostgreSQL. Status changes are conditional UPDATEs, so two workers cannot both move a turn on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.postgres._sql import PostgresRepository
from domain.errors import NotFound
from domain.messages import OrderingScope, ScopeKey
from domain.turns import AIReply, Turn, TurnStatus

_TURN_COLUMNS = (
    "turn_id, user_id, conversation_id, phone_number_id, status, inbound_ids, credits_reserved, attempts, "
    "response_id, failure_reason, created_at, updated_at"
)


def _turn(row: dict[str, Any]) -> Turn:
    return Turn(
        turn_id=row["turn_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        phone_number_id=row["phone_number_id"],
        status=TurnStatus(row["status"]),
        inbound_ids=tuple(row["inbound_ids"]),
        credits_reserved=row["credits_reserved"],
        attempts=row["attempts"],
        response_id=row["response_id"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PostgresTurnsRepository(PostgresRepository):
    def open_turn(self, scope: ScopeKey) -> Turn | None:
        # Each branch matches one of the partial indexes turns_open_conversation_idx / turns_open_channel_idx.
        if scope.kind is OrderingScope.CONVERSATION:
            cursor = self._cursor().execute(
                f"""
                SELECT {_TURN_COLUMNS} FROM turns
                WHERE conversation_id = %s AND status IN ('awaiting_ai', 'replying') ORDER BY turn_id LIMIT 1
                """,
                (int(scope.value),),
            )
        else:
            cursor = self._cursor().execute(
                f"""
                SELECT {_TURN_COLUMNS} FROM turns
                WHERE phone_number_id = %s AND status IN ('awaiting_ai', 'replying') ORDER BY turn_id LIMIT 1
                """,
                (scope.value,),
            )
        row = cursor.fetchone()
        return None if row is None else _turn(row)

    def start(
        self,
        *,
        user_id: str,
        conversation_id: int,
        phone_number_id: str,
        inbound_ids: Sequence[int],
        credits_reserved: int,
        now: datetime,
    ) -> Turn:
        row = (
            self._cursor()
            .execute(
                f"""
                WITH turn AS (
                    INSERT INTO turns (
                        user_id, conversation_id, phone_number_id, status, inbound_ids, credits_reserved,
                        created_at, updated_at)
                    VALUES (%(user_id)s, %(conversation_id)s, %(phone_number_id)s, 'awaiting_ai', %(inbound_ids)s,
                            %(credits_reserved)s, %(now)s, %(now)s)
                    RETURNING {_TURN_COLUMNS}
                ), processing AS (
                    UPDATE messages
                    SET status = 'processing', turn_id = (SELECT turn_id FROM turn), updated_at = %(now)s
                    WHERE message_id = ANY(%(inbound_ids)s) AND direction = 'inbound'
                )
                SELECT {_TURN_COLUMNS} FROM turn
                """,
                {
                    "user_id": user_id,
                    "conversation_id": conversation_id,
                    "phone_number_id": phone_number_id,
                    "inbound_ids": list(inbound_ids),
                    "credits_reserved": credits_reserved,
                    "now": now,
                },
            )
            .fetchone()
        )
        if row is None:
            raise RuntimeError(f"turn of conversation {conversation_id} was not created")
        return _turn(row)

    def note_attempt(self, turn_id: int, now: datetime) -> Turn:
        row = (
            self._cursor()
            .execute(
                f"""
                UPDATE turns SET attempts = attempts + 1, updated_at = %s WHERE turn_id = %s
                RETURNING {_TURN_COLUMNS}
                """,
                (now, turn_id),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound(f"turn {turn_id} does not exist")
        return _turn(row)

    def record_reply(self, turn_id: int, reply: AIReply, now: datetime) -> bool:
        cursor = self._cursor().execute(
            """
            UPDATE turns SET status = 'replying', response_id = %s, input_tokens = %s, output_tokens = %s,
                             updated_at = %s
            WHERE turn_id = %s AND status = 'awaiting_ai'
            """,
            (reply.response_id, reply.input_tokens, reply.output_tokens, now, turn_id),
        )
        return cursor.rowcount == 1

    def fail(self, turn_id: int, reason: str, now: datetime) -> bool:
        cursor = self._cursor().execute(
            """
            UPDATE turns SET status = 'failed', failure_reason = %s, updated_at = %s
            WHERE turn_id = %s AND status = 'awaiting_ai'
            """,
            (reason, now, turn_id),
        )
        return cursor.rowcount == 1

    def finish(self, turn_id: int, now: datetime) -> None:
        self._cursor().execute(
            "UPDATE turns SET status = 'done', updated_at = %s WHERE turn_id = %s AND status = 'replying'",
            (now, turn_id),
        )
