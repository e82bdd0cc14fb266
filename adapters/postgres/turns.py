"""AI turns in PostgreSQL. Status changes are conditional UPDATEs, so two workers cannot both move a turn on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import errors

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.messages import FINISH_TURN, MESSAGE_COLUMNS, OUTBOUND_PARTS, message_of
from domain.errors import Conflict, NotFound
from domain.messages import Conversation, Message, OrderingScope, ScopeKey
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
        turn = self._start(user_id, conversation_id, phone_number_id, inbound_ids, credits_reserved, now, hold=False)
        if turn is None:
            raise RuntimeError(f"turn of conversation {conversation_id} was not created")
        return turn

    def start_funded(
        self,
        *,
        user_id: str,
        conversation_id: int,
        phone_number_id: str,
        inbound_ids: Sequence[int],
        credits_reserved: int,
        now: datetime,
    ) -> Turn | None:
        return self._start(user_id, conversation_id, phone_number_id, inbound_ids, credits_reserved, now, hold=True)

    def _start(
        self,
        user_id: str,
        conversation_id: int,
        phone_number_id: str,
        inbound_ids: Sequence[int],
        credits_reserved: int,
        now: datetime,
        *,
        hold: bool,
    ) -> Turn | None:
        """One statement. With `hold`, the credits are held first by the same conditional UPDATE as
        `credits.reserve`: no hold, no turn, nothing marked (None)."""
        row = (
            self._cursor()
            .execute(
                f"""
                WITH held AS (
                    UPDATE credits SET reserved = reserved + %(credits_reserved)s, updated_at = %(now)s
                    WHERE %(hold)s AND user_id = %(user_id)s AND balance - reserved >= %(credits_reserved)s
                    RETURNING user_id
                ), owner AS (
                    SELECT user_id FROM held UNION ALL SELECT %(user_id)s::text WHERE NOT %(hold)s
                ), turn AS (
                    INSERT INTO turns (
                        user_id, conversation_id, phone_number_id, status, inbound_ids, credits_reserved,
                        created_at, updated_at)
                    SELECT user_id, %(conversation_id)s, %(phone_number_id)s, 'awaiting_ai', %(inbound_ids)s,
                           %(credits_reserved)s, %(now)s, %(now)s
                    FROM owner
                    RETURNING {_TURN_COLUMNS}
                ), processing AS (
                    UPDATE messages SET status = 'processing', turn_id = turn.turn_id, updated_at = %(now)s
                    FROM turn
                    WHERE messages.message_id = ANY(%(inbound_ids)s) AND messages.direction = 'inbound'
                )
                SELECT {_TURN_COLUMNS} FROM turn
                """,
                {
                    "hold": hold,
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
        return None if row is None else _turn(row)

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

    def record_answer(
        self,
        turn: Turn,
        conversation: Conversation,
        reply: AIReply,
        texts: Sequence[str],
        now: datetime,
        *,
        claim_first: bool,
    ) -> list[Message] | None:
        if not texts:
            raise ValueError("an answer has at least one part")
        # One statement instead of eleven (BEGIN, seven writes, a ledger lookup and its savepoint, COMMIT):
        # every part hangs off `replied`, so when the turn has moved on nothing at all is written. The
        # sequence numbers are allocated under the conversation's row lock, as in `messages.add_outbound`;
        # the ledger's unique index on a turn's charge stays the last word against a double charge.
        try:
            rows = self._cursor().execute(
                """
                WITH replied AS (
                    UPDATE turns SET status = 'replying', response_id = %(response_id)s,
                                     input_tokens = %(input_tokens)s, output_tokens = %(output_tokens)s,
                                     updated_at = %(now)s
                    WHERE turn_id = %(turn_id)s AND status = 'awaiting_ai'
                    RETURNING turn_id, user_id, inbound_ids, credits_reserved
                ), allocated AS (
                    UPDATE conversations AS c
                    SET last_sequence_no = c.last_sequence_no + %(count)s,
                        last_message_at = greatest(c.last_message_at, %(now)s),
                        openai_last_item_id = coalesce(%(last_item_id)s, c.openai_last_item_id)
                    FROM replied
                    WHERE c.conversation_id = %(conversation_id)s
                    RETURNING c.user_id, c.phone_number_id, c.last_sequence_no - %(count)s AS base
                ), parts AS ("""
                + OUTBOUND_PARTS
                + f"""
                ), answered AS (
                    UPDATE messages SET status = 'answered', failure_reason = NULL, failure_code = NULL,
                                        updated_at = %(now)s
                    FROM replied
                    WHERE messages.message_id = ANY(replied.inbound_ids) AND messages.direction = 'inbound'
                ), charged AS (
                    UPDATE credits
                    SET balance = credits.balance - replied.credits_reserved,
                        reserved = credits.reserved - replied.credits_reserved, updated_at = %(now)s
                    FROM replied
                    WHERE credits.user_id = replied.user_id
                    RETURNING credits.user_id, credits.balance, replied.credits_reserved, replied.turn_id
                ), ledger AS (
                    INSERT INTO credit_ledger (user_id, kind, amount, balance_after, reason, turn_id, created_at)
                    SELECT user_id, 'charge', -credits_reserved, balance, 'ai_turn', turn_id, %(now)s FROM charged
                )
                SELECT {MESSAGE_COLUMNS} FROM parts ORDER BY sequence_no
                """,
                {
                    "turn_id": turn.turn_id,
                    "conversation_id": conversation.conversation_id,
                    "response_id": reply.response_id,
                    "input_tokens": reply.input_tokens,
                    "output_tokens": reply.output_tokens,
                    "last_item_id": reply.last_item_id,
                    "count": len(texts),
                    "texts": list(texts),
                    "claim_first": claim_first,
                    "now": now,
                },
            )
        except errors.CheckViolation as error:
            raise Conflict(f"cannot charge turn {turn.turn_id}: less than its credits are held") from error
        parts = [message_of(row) for row in rows]
        return parts or None

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
        self._cursor().execute(FINISH_TURN, {"now": now, "turn_id": turn_id})
