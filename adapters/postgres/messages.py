"""Messages in PostgreSQL: recording inbound, the pending work of an ordering scope, replies, delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString

from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.postgres._sql import PostgresRepository
from application.ports.repositories import MessageQuery, Page
from domain.errors import ValidationFailed
from domain.messages import (
    Conversation,
    DeliveryReport,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
    next_delivery_status,
)
from domain.tenancy import Route
from domain.turns import AIReply

MESSAGE_COLUMNS = (
    "message_id, user_id, conversation_id, phone_number_id, direction, sequence_no, platform_message_id, "
    "content_type, text, status, failure_reason, failure_code, turn_id, input_tokens, output_tokens, sent_at, "
    "created_at, updated_at"
)

_DELIVERED_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED})

_EXISTING_INBOUND: LiteralString = """
SELECT message_id, conversation_id, sequence_no, true AS duplicate FROM messages
WHERE phone_number_id = %(phone_number_id)s AND platform_message_id = %(platform_message_id)s
"""

# One round trip. The conversation upsert takes the conversation's row lock and holds it until
# commit, so concurrent messages of one conversation get their sequence numbers in commit order.
# The NOT EXISTS skips the upsert for a redelivery already stored, so the usual (sequential)
# duplicate neither burns a sequence number nor reopens an archived conversation. Two copies
# arriving at the same moment both pass it; the message insert then keeps one, and the other
# leaves a gap in the conversation's sequence numbers (harmless: order is all they promise).
_RECORD_INBOUND = (
    """
WITH conversation AS (
    INSERT INTO conversations AS c (
        user_id, agent_id, phone_number_id, customer_id, customer_name,
        last_sequence_no, created_at, last_message_at, last_customer_message_at)
    SELECT %(user_id)s, %(agent_id)s, %(phone_number_id)s, %(customer_id)s, %(customer_name)s,
           1, %(now)s, %(now)s, %(sent_at)s
    WHERE NOT EXISTS (
        SELECT 1 FROM messages
        WHERE phone_number_id = %(phone_number_id)s AND platform_message_id = %(platform_message_id)s)
    ON CONFLICT (agent_id, customer_id) WHERE is_active DO UPDATE SET
        last_sequence_no = c.last_sequence_no + 1,
        last_message_at = greatest(c.last_message_at, excluded.last_message_at),
        last_customer_message_at = greatest(c.last_customer_message_at, excluded.last_customer_message_at),
        customer_name = coalesce(excluded.customer_name, c.customer_name)
    RETURNING conversation_id, last_sequence_no
), inserted AS (
    INSERT INTO messages (
        user_id, conversation_id, phone_number_id, direction, sequence_no, platform_message_id,
        content_type, text, status, failure_reason, raw, sent_at, created_at, updated_at)
    SELECT %(user_id)s, conversation_id, %(phone_number_id)s, 'inbound', last_sequence_no, %(platform_message_id)s,
           %(content_type)s, %(text)s, %(status)s, %(failure_reason)s, %(raw)s, %(sent_at)s, %(now)s, %(now)s
    FROM conversation
    ON CONFLICT (phone_number_id, platform_message_id) WHERE platform_message_id IS NOT NULL DO NOTHING
    RETURNING message_id, conversation_id, sequence_no
)
SELECT message_id, conversation_id, sequence_no, false AS duplicate FROM inserted
UNION ALL
"""
    + _EXISTING_INBOUND
    + "AND NOT EXISTS (SELECT 1 FROM inserted)"
)


# Channel scope: the received messages of the channel's oldest pending conversation, up to (not
# including) the first received message of another conversation. Both subqueries walk the small
# partial index messages_received_channel_idx from its start.
_CHANNEL_BATCH = f"""
WITH head AS (
    SELECT conversation_id FROM messages
    WHERE phone_number_id = %(scope)s AND status = 'received' ORDER BY message_id LIMIT 1
), cut AS (
    SELECT message_id FROM messages
    WHERE phone_number_id = %(scope)s AND status = 'received'
      AND conversation_id <> (SELECT conversation_id FROM head)
    ORDER BY message_id LIMIT 1
)
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE phone_number_id = %(scope)s AND status = 'received'
  AND conversation_id = (SELECT conversation_id FROM head)
  AND message_id < ALL (SELECT message_id FROM cut)
ORDER BY message_id
"""

_STALLED = {
    OrderingScope.CONVERSATION: """
        SELECT scope FROM (
            SELECT conversation_id::text AS scope, created_at AS since FROM messages
            WHERE status = 'received' AND created_at < %(older_than)s
            UNION ALL
            SELECT conversation_id::text, updated_at FROM turns
            WHERE status IN ('awaiting_ai', 'replying') AND updated_at < %(older_than)s
        ) stalled GROUP BY scope ORDER BY min(since) LIMIT %(limit)s
    """,
    OrderingScope.PHONE_NUMBER: """
        SELECT scope FROM (
            SELECT phone_number_id AS scope, created_at AS since FROM messages
            WHERE status = 'received' AND created_at < %(older_than)s
            UNION ALL
            SELECT phone_number_id, updated_at FROM turns
            WHERE status IN ('awaiting_ai', 'replying') AND updated_at < %(older_than)s
        ) stalled GROUP BY scope ORDER BY min(since) LIMIT %(limit)s
    """,
}

#: The parts of a reply, numbered from the `allocated` CTE's `base` (the conversation's sequence before
#: them), token usage on the first; with `claim_first` the first is stored already `sending`.
OUTBOUND_PARTS: LiteralString = f"""
    INSERT INTO messages (
        user_id, conversation_id, phone_number_id, direction, sequence_no, content_type, text, status,
        turn_id, input_tokens, output_tokens, created_at, updated_at)
    SELECT allocated.user_id, %(conversation_id)s, allocated.phone_number_id, 'outbound',
           allocated.base + piece.ordinality, 'text', piece.text,
           CASE WHEN %(claim_first)s AND piece.ordinality = 1 THEN 'sending' ELSE 'pending' END, %(turn_id)s,
           CASE WHEN piece.ordinality = 1 THEN %(input_tokens)s::integer END,
           CASE WHEN piece.ordinality = 1 THEN %(output_tokens)s::integer END,
           %(now)s, %(now)s
    FROM allocated, unnest(%(texts)s::text[]) WITH ORDINALITY AS piece(text, ordinality)
    RETURNING {MESSAGE_COLUMNS}
"""

#: `turns.finish`, and the tail of a part's outcome closing its turn in the same statement (with a
#: NULL turn id it matches nothing).
FINISH_TURN: LiteralString = """
    UPDATE turns SET status = 'done', updated_at = %(now)s WHERE turn_id = %(turn_id)s AND status = 'replying'
"""

_LIST_ORDERS = {
    "newest": (sql.SQL("message_id < %(cursor)s"), sql.SQL("message_id DESC"), "message_id"),
    "sequence": (sql.SQL("sequence_no > %(cursor)s"), sql.SQL("sequence_no"), "sequence_no"),
}


def message_of(row: dict[str, Any]) -> Message:
    return Message(
        message_id=row["message_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        phone_number_id=row["phone_number_id"],
        direction=Direction(row["direction"]),
        sequence_no=row["sequence_no"],
        platform_message_id=row["platform_message_id"],
        content_type=row["content_type"],
        text=row["text"],
        status=MessageStatus(row["status"]),
        failure_reason=row["failure_reason"],
        failure_code=row["failure_code"],
        turn_id=row["turn_id"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        sent_at=row["sent_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _recorded(row: dict[str, Any]) -> RecordedInbound:
    return RecordedInbound(
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        sequence_no=row["sequence_no"],
        duplicate=row["duplicate"],
    )


class PostgresMessagesRepository(PostgresRepository):
    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound:
        if route.agent is None:
            raise ValueError(f"channel {route.channel.phone_number_id} has no agent to record a conversation with")
        params = {
            "user_id": route.user_id,
            "agent_id": route.agent.agent_id,
            "phone_number_id": route.channel.phone_number_id,
            "customer_id": inbound.customer_id,
            "customer_name": inbound.customer_name,
            "platform_message_id": inbound.platform_message_id,
            "content_type": inbound.content_type,
            "text": inbound.text,
            "status": (MessageStatus.RECEIVED if inbound.answerable else MessageStatus.SKIPPED).value,
            "failure_reason": None if inbound.answerable else inbound.skip_reason,
            "raw": Jsonb(inbound.raw),
            "sent_at": inbound.sent_at,
            "now": now,
        }
        row = self._cursor().execute(_RECORD_INBOUND, params).fetchone()
        if row is None:
            # A concurrent copy committed while this statement waited on it, after this statement's
            # snapshot was taken; a new statement sees it.
            row = self._cursor().execute(_EXISTING_INBOUND, params).fetchone()
        if row is None:
            raise RuntimeError(f"inbound message {inbound.platform_message_id} was neither stored nor found")
        return _recorded(row)

    def apply_delivery_report(self, report: DeliveryReport, now: datetime) -> bool:
        cursor = self._cursor()
        # The row lock makes read-decide-write atomic against a concurrent report for the same message.
        row = cursor.execute(
            """
            SELECT message_id, status FROM messages
            WHERE phone_number_id = %s AND platform_message_id = %s AND direction = 'outbound'
            FOR UPDATE
            """,
            (report.phone_number_id, report.platform_message_id),
        ).fetchone()
        if row is None:
            return False
        status = next_delivery_status(MessageStatus(row["status"]), report.status)
        if status is None and report.error_code is None and report.error_reason is None:
            return True
        cursor.execute(
            """
            UPDATE messages SET
                status = coalesce(%(status)s, status),
                sent_at = CASE WHEN %(delivered)s THEN coalesce(sent_at, %(at)s) ELSE sent_at END,
                failure_code = coalesce(%(code)s, failure_code),
                failure_reason = coalesce(%(reason)s, failure_reason),
                updated_at = %(now)s
            WHERE message_id = %(message_id)s
            """,
            {
                "status": None if status is None else status.value,
                "delivered": status in _DELIVERED_STATUSES,
                "at": report.at,
                "code": report.error_code,
                "reason": report.error_reason,
                "now": now,
                "message_id": row["message_id"],
            },
        )
        return True

    def pending_batch(self, scope: ScopeKey) -> list[Message]:
        if scope.kind is OrderingScope.CONVERSATION:
            rows = self._cursor().execute(
                f"""
                SELECT {MESSAGE_COLUMNS} FROM messages
                WHERE conversation_id = %s AND status = 'received' ORDER BY sequence_no
                """,
                (int(scope.value),),
            )
        else:
            rows = self._cursor().execute(_CHANNEL_BATCH, {"scope": scope.value})
        return [message_of(row) for row in rows]

    def has_pending(self, scope: ScopeKey) -> bool:
        if scope.kind is OrderingScope.CONVERSATION:
            query: LiteralString = (
                "SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id = %s AND status = 'received')"
            )
            value: object = int(scope.value)
        else:
            query = "SELECT EXISTS (SELECT 1 FROM messages WHERE phone_number_id = %s AND status = 'received')"
            value = scope.value
        row = self._connection().execute(query, (value,)).fetchone()
        return bool(row and row[0])

    def get_many(self, message_ids: Sequence[int]) -> list[Message]:
        rows = self._cursor().execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ANY(%s) ORDER BY conversation_id, sequence_no",
            (list(message_ids),),
        )
        return [message_of(row) for row in rows]

    def mark_inbound(
        self,
        message_ids: Sequence[int],
        status: MessageStatus,
        now: datetime,
        *,
        failure_reason: str | None = None,
        failure_code: str | None = None,
    ) -> None:
        self._cursor().execute(
            """
            UPDATE messages SET status = %s, failure_reason = %s, failure_code = %s, updated_at = %s
            WHERE message_id = ANY(%s) AND direction = 'inbound'
            """,
            (status.value, failure_reason, failure_code, now, list(message_ids)),
        )

    def add_outbound(
        self, conversation: Conversation, turn_id: int, texts: Sequence[str], reply: AIReply, now: datetime
    ) -> list[Message]:
        if not texts:
            return []
        # The UPDATE allocates the numbers under the conversation's row lock, like record_inbound.
        rows = self._cursor().execute(
            """
            WITH allocated AS (
                UPDATE conversations
                SET last_sequence_no = last_sequence_no + %(count)s,
                    last_message_at = greatest(last_message_at, %(now)s)
                WHERE conversation_id = %(conversation_id)s
                RETURNING user_id, phone_number_id, last_sequence_no - %(count)s AS base
            )
            """
            + OUTBOUND_PARTS,
            {
                "count": len(texts),
                "now": now,
                "conversation_id": conversation.conversation_id,
                "turn_id": turn_id,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "texts": list(texts),
                "claim_first": False,
            },
        )
        return sorted((message_of(row) for row in rows), key=lambda message: message.sequence_no)

    def outbound_for_turn(self, turn_id: int) -> list[Message]:
        rows = self._cursor().execute(
            f"""
            SELECT {MESSAGE_COLUMNS} FROM messages
            WHERE turn_id = %s AND direction = 'outbound' ORDER BY sequence_no
            """,
            (turn_id,),
        )
        return [message_of(row) for row in rows]

    def start_sending(self, message_id: int, now: datetime) -> bool:
        cursor = self._cursor().execute(
            """
            UPDATE messages SET status = 'sending', updated_at = %s
            WHERE message_id = %s AND direction = 'outbound' AND status = 'pending'
            """,
            (now, message_id),
        )
        return cursor.rowcount == 1

    def record_sent(
        self, message_id: int, platform_message_id: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        self._cursor().execute(
            """
            WITH part AS (
                UPDATE messages SET platform_message_id = %(platform_message_id)s, status = 'sent',
                                    sent_at = %(now)s, updated_at = %(now)s
                WHERE message_id = %(message_id)s AND direction = 'outbound'
            )
            """
            + FINISH_TURN,
            {"platform_message_id": platform_message_id, "now": now, "message_id": message_id, "turn_id": finishing},
        )

    def record_send_failure(
        self, message_id: int, code: str | None, reason: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        self._cursor().execute(
            """
            WITH part AS (
                UPDATE messages SET status = 'failed', failure_code = %(code)s, failure_reason = %(reason)s,
                                    updated_at = %(now)s
                WHERE message_id = %(message_id)s AND direction = 'outbound'
            )
            """
            + FINISH_TURN,
            {"code": code, "reason": reason, "now": now, "message_id": message_id, "turn_id": finishing},
        )

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        rows = self._cursor().execute(_STALLED[ordering], {"older_than": older_than, "limit": limit})
        return [ScopeKey(ordering, row["scope"]) for row in rows]

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
        items = [message_of(row) for row in rows[: query.limit]]
        next_cursor = rows[query.limit - 1][cursor_column] if len(rows) > query.limit else None
        return Page(items=items, next_cursor=next_cursor)
