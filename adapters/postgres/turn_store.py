"""The worker's storage in PostgreSQL: pending work read in one round trip, each decision saved in one statement.

Every change the domain decided is one data-modifying statement, conditional on the state it was
decided from (`before`), run on its own (autocommit): a turn whose status moved on, or a part another
worker claimed, makes the statement match nothing, and nothing of it is written. The statements
carry out what the domain computed (statuses, figures, texts); the schema's constraints —
`credits_never_negative`, one charge per turn, one number per message — are the last guard.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row

from adapters.postgres._sql import PostgresStore
from adapters.postgres.conversations import CONVERSATION_COLUMNS
from adapters.postgres.credits import NEVER, move_credits, movement_params, refused_when_negative
from adapters.postgres.messages import MESSAGE_COLUMNS
from adapters.postgres.rows import columns, entity
from application.ports.pipeline import CONTEXT_LIMIT, Work
from domain.conversations import Conversation
from domain.credits import Credits
from domain.errors import InsufficientCredits
from domain.messages import Message, OrderingScope, ScopeKey
from domain.turns import (
    PartChange,
    StatusChange,
    Turn,
    TurnAnswered,
    TurnFailed,
    TurnHeld,
    TurnRefused,
    TurnStarted,
    TurnStatus,
)

TURN_COLUMNS = (
    "turn_id, user_id, conversation_id, phone_number_id, status, inbound_ids, credits_reserved, attempts, "
    "response_id, failure_reason, created_at, updated_at"
)

# --- reading the work of a scope -------------------------------------------------------------------
# The scope's oldest open turn, else the conversation of its first received message; that conversation
# with the tenant's credits and the turn. Each branch walks one of the small partial indexes
# (turns_open_*_idx, messages_received_*_idx).


def _head(column: LiteralString, order: LiteralString) -> LiteralString:
    return f"""
    WITH open_turn AS (
        SELECT {TURN_COLUMNS} FROM turns
        WHERE {column} = %(scope)s AND status IN ('awaiting_ai', 'replying') ORDER BY turn_id LIMIT 1
    )
    SELECT {columns(CONVERSATION_COLUMNS, table="c", prefix="c_")},
           cr.balance AS cr_balance, cr.reserved AS cr_reserved, cr.updated_at AS cr_updated_at,
           {columns(TURN_COLUMNS, table="t", prefix="t_")}
    FROM conversations c
    LEFT JOIN credits cr ON cr.user_id = c.user_id
    LEFT JOIN open_turn t ON true
    WHERE c.conversation_id = coalesce(
        (SELECT conversation_id FROM open_turn),
        (SELECT conversation_id FROM messages WHERE {column} = %(scope)s AND status = 'received'
         ORDER BY {order} LIMIT 1))
    """


_HEAD = {
    OrderingScope.CONVERSATION: _head("conversation_id", "sequence_no"),
    OrderingScope.PHONE_NUMBER: _head("phone_number_id", "message_id"),
}

_TURN_INBOUND = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE conversation_id = %(conversation_id)s AND message_id = ANY(%(ids)s) AND direction = 'inbound'
ORDER BY sequence_no
"""

_TURN_PARTS = f"""
SELECT {MESSAGE_COLUMNS} FROM messages WHERE turn_id = %(turn_id)s AND direction = 'outbound' ORDER BY sequence_no
"""

_BATCH = {
    OrderingScope.CONVERSATION: f"""
        SELECT {MESSAGE_COLUMNS} FROM messages
        WHERE conversation_id = %(conversation_id)s AND status = 'received' ORDER BY sequence_no
    """,
    # The channel's received messages of this conversation, up to (not including) the channel's first
    # received message of another conversation: the channel's order is the order received.
    OrderingScope.PHONE_NUMBER: f"""
        SELECT {MESSAGE_COLUMNS} FROM messages
        WHERE phone_number_id = %(scope)s AND status = 'received' AND conversation_id = %(conversation_id)s
          AND message_id < coalesce(
              (SELECT min(message_id) FROM messages
               WHERE phone_number_id = %(scope)s AND status = 'received' AND conversation_id <> %(conversation_id)s),
              9223372036854775807)
        ORDER BY message_id
    """,
}


def _context(seen: LiteralString, first: LiteralString) -> LiteralString:
    """What came between what the AI has seen (`seen`) and the batch (`first`, its first sequence number),
    not from the AI: `domain.handoff.ai_context` chooses what of it the AI is told. Bounded: a long
    hand-off is summed up by its latest messages."""
    return f"""
    SELECT * FROM (
        SELECT {MESSAGE_COLUMNS} FROM messages
        WHERE conversation_id = %(conversation_id)s AND sequence_no > {seen} AND sequence_no < {first}
          AND sender <> 'ai'
        ORDER BY sequence_no DESC LIMIT %(limit)s
    ) latest ORDER BY sequence_no
    """


_CONTEXT = _context("%(seen)s", "%(first)s")

# The same, bounded in SQL by the conversation's received messages as the batch reads them, so that it
# can be sent together with the head and the batch (see `next_work`).
_PENDING_CONTEXT = _context(
    "(SELECT ai_seen_sequence_no FROM conversations WHERE conversation_id = %(conversation_id)s)",
    "(SELECT min(sequence_no) FROM messages WHERE conversation_id = %(conversation_id)s AND status = 'received')",
)

_HAS_PENDING = {
    OrderingScope.CONVERSATION: """
        SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id = %s AND status = 'received') AS pending
    """,
    OrderingScope.PHONE_NUMBER: """
        SELECT EXISTS (SELECT 1 FROM messages WHERE phone_number_id = %s AND status = 'received') AS pending
    """,
}

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

# --- saving decisions ------------------------------------------------------------------------------


def _batch_change(gate: LiteralString | None = None) -> LiteralString:
    """A CTE `batch` moving the inbound messages of a `StatusChange` (see `_batch_params`) that are still
    in its `before` status; with `gate`, only when that CTE returned a row.

    The conversation leads the condition although the ids alone would do: these statements are prepared,
    and the plan PostgreSQL keeps for a connection is made while the table may still be small. For ids
    alone that plan was a sequential scan of `messages`, kept while the table grew — every turn read the
    whole table, twice (bench/README.md, "A turn read the whole messages table"). The conversation's
    index is the cheaper plan at any size."""
    source: LiteralString = f" FROM (SELECT 1 FROM {gate} LIMIT 1) AS gate" if gate is not None else ""
    return f"""
    batch AS (
        UPDATE messages SET status = %(b_after)s, failure_reason = %(b_reason)s, failure_code = NULL,
                            turn_id = coalesce(%(b_turn)s, messages.turn_id), updated_at = %(now)s{source}
        WHERE messages.conversation_id = %(b_conversation)s AND messages.message_id = ANY(%(b_ids)s)
          AND messages.direction = 'inbound' AND messages.status = %(b_before)s
    )"""


def _batch_params(change: StatusChange, turn_id: int | None = None) -> dict[str, Any]:
    return {
        "b_conversation": change.conversation_id,
        "b_ids": list(change.message_ids),
        "b_before": change.before.value,
        "b_after": change.after.value,
        "b_reason": change.reason,
        "b_turn": turn_id,
    }


# The turn starts only while its batch is where it was read: the conversation active (held FOR KEY SHARE
# until the statement ends, against a relink, which locks it FOR UPDATE before archiving it; customers'
# messages landing meanwhile do not wait for it) and every message of the batch in it, pending.
_START = (
    f"""
    WITH pending AS (
        SELECT c.conversation_id FROM conversations c
        WHERE c.conversation_id = %(conversation_id)s AND c.is_active
          AND (SELECT count(*) FROM messages
               WHERE message_id = ANY(%(b_ids)s) AND conversation_id = %(conversation_id)s
                 AND direction = 'inbound' AND status = %(b_before)s) = cardinality(%(b_ids)s::bigint[])
        FOR KEY SHARE
    ), turn AS (
        INSERT INTO turns (
            user_id, conversation_id, phone_number_id, status, inbound_ids, credits_reserved, created_at, updated_at)
        SELECT %(user_id)s, conversation_id, %(phone_number_id)s, %(status)s, %(b_ids)s, %(credits_reserved)s,
               %(now)s, %(now)s
        FROM pending
        RETURNING {TURN_COLUMNS}
    ),"""
    + move_credits(gate="turn")
    + ","
    + _batch_change(gate="turn").replace("coalesce(%(b_turn)s, messages.turn_id)", "(SELECT turn_id FROM turn)")
    + f"""
    SELECT {TURN_COLUMNS} FROM turn
    """
)

_REFUSE = "WITH" + _batch_change() + " SELECT 1"

# The gate locks the conversation and the channel as they were read (FOR SHARE): a resume holds them
# FOR UPDATE while it releases the held messages, so a batch is either held before the resume reads the
# held messages, or finds the bot active and holds nothing.
_HOLD = (
    """
    WITH gate AS (
        SELECT 1 FROM conversations c JOIN phone_numbers p ON p.phone_number_id = c.phone_number_id
        WHERE c.conversation_id = %(conversation_id)s AND c.bot = %(bot)s
          AND c.bot_paused_until IS NOT DISTINCT FROM %(paused_until)s AND p.bot = %(channel_bot)s
        FOR SHARE OF c, p
    ),"""
    + _batch_change(gate="gate")
    + """
    SELECT count(*) AS held FROM gate
    """
)

_PAUSES_RUN_OUT: LiteralString = """
SELECT c.user_id, c.conversation_id FROM conversations c
WHERE c.bot_paused_until IS NOT NULL AND c.bot_paused_until <= %(now)s AND c.bot = 'paused'
ORDER BY c.bot_paused_until LIMIT %(limit)s
"""

_SAVE_TURN: LiteralString = """
UPDATE turns SET status = %(status)s, attempts = %(attempts)s, response_id = %(response_id)s,
                 failure_reason = %(failure_reason)s, updated_at = %(now)s
WHERE turn_id = %(turn_id)s AND status = %(before)s
"""

_LINK_AI: LiteralString = """
UPDATE conversations SET openai_conversation_id = %s WHERE conversation_id = %s AND openai_conversation_id IS NULL
"""

# The answer, at once: when the turn has moved on, `replied` is empty and nothing else is written
# (every other CTE hangs off it). The parts are numbered under the conversation's row lock, after
# every message so far (`Conversation.append`); the ledger's unique index on a turn's charge is the
# last word against charging twice.
_ANSWER = (
    """
    WITH replied AS (
        UPDATE turns SET status = %(status)s, response_id = %(response_id)s, input_tokens = %(input_tokens)s,
                         output_tokens = %(output_tokens)s, updated_at = %(now)s
        WHERE turn_id = %(turn_id)s AND status = %(before)s
        RETURNING turn_id
    ), appended AS (
        UPDATE conversations AS c
        SET last_sequence_no = c.last_sequence_no + %(count)s,
            last_message_at = greatest(c.last_message_at, %(now)s),
            openai_last_item_id = coalesce(%(last_item_id)s, c.openai_last_item_id),
            ai_seen_sequence_no = c.last_sequence_no + %(count)s
        FROM replied
        WHERE c.conversation_id = %(conversation_id)s
        RETURNING c.last_sequence_no - %(count)s AS base
    ), parts AS (
        INSERT INTO messages (
            user_id, conversation_id, phone_number_id, direction, sender, sequence_no, content_type, text, status,
            turn_id, input_tokens, output_tokens, created_at, updated_at)
        SELECT %(user_id)s, %(conversation_id)s, %(phone_number_id)s, 'outbound', 'ai', appended.base + part.n, 'text',
               part.text, part.status, %(turn_id)s, part.input_tokens, part.output_tokens, %(now)s, %(now)s
        FROM appended,
             unnest(%(texts)s::text[], %(statuses)s::text[], %(in_tokens)s::integer[], %(out_tokens)s::integer[])
             WITH ORDINALITY AS part(text, status, input_tokens, output_tokens, n)
        RETURNING """
    + MESSAGE_COLUMNS
    + """
    ),"""
    + _batch_change(gate="replied")
    + ","
    + move_credits(gate="replied")
    + f"""
    SELECT {MESSAGE_COLUMNS} FROM parts ORDER BY sequence_no
    """
)

_FAIL = (
    """
    WITH failed AS (
        UPDATE turns SET status = %(status)s, failure_reason = %(failure_reason)s, updated_at = %(now)s
        WHERE turn_id = %(turn_id)s AND status = %(before)s
        RETURNING turn_id
    ),"""
    + move_credits(gate="failed")
    + ","
    + _batch_change(gate="failed")
    + """
    SELECT count(*) AS failed FROM failed
    """
)

# A part's claim or outcome; with `turn_status`, the end of its turn too, only when the part moved.
_SAVE_PART: LiteralString = """
WITH part AS (
    UPDATE messages SET status = %(status)s, platform_message_id = %(platform_message_id)s, sent_at = %(sent_at)s,
                        failure_code = %(failure_code)s, failure_reason = %(failure_reason)s, updated_at = %(now)s
    WHERE message_id = %(message_id)s AND direction = 'outbound' AND status = %(before)s
    RETURNING turn_id
), turn AS (
    UPDATE turns SET status = %(turn_status)s, updated_at = %(now)s
    FROM part
    WHERE %(turn_status)s::text IS NOT NULL AND turns.turn_id = part.turn_id AND turns.status = %(turn_before)s
)
SELECT count(*) AS saved FROM part
"""


class PostgresTurnStore(PostgresStore):
    # --- reading --------------------------------------------------------------------------------------

    def next_work(self, scope: ScopeKey) -> Work | None:
        value: object = int(scope.value) if scope.kind is OrderingScope.CONVERSATION else scope.value
        with self._autocommit() as cursor:
            batch_ahead: list[DictRow] | None = None
            context_ahead: list[DictRow] | None = None
            if scope.kind is OrderingScope.CONVERSATION:
                head, batch_ahead, context_ahead = self._read_ahead(cursor, int(scope.value))
            else:
                head = cursor.execute(_HEAD[scope.kind], {"scope": value}).fetchone()
            if head is None:
                return None
            conversation = entity(head, Conversation, prefix="c_")
            turn = None if head["t_turn_id"] is None else entity(head, Turn, prefix="t_")
            if turn is None and batch_ahead is not None:
                rows: Iterable[DictRow] = batch_ahead
            elif turn is None:
                rows = cursor.execute(
                    _BATCH[scope.kind], {"scope": value, "conversation_id": conversation.conversation_id}
                )
            elif turn.status is TurnStatus.AWAITING_AI:
                rows = cursor.execute(
                    _TURN_INBOUND, {"conversation_id": conversation.conversation_id, "ids": list(turn.inbound_ids)}
                )
            else:
                rows = cursor.execute(_TURN_PARTS, {"turn_id": turn.turn_id})
            messages = tuple(entity(row, Message) for row in rows)
            context: tuple[Message, ...] = ()
            if messages and turn is None and context_ahead is not None:
                context = tuple(entity(row, Message) for row in context_ahead)
            elif messages and (turn is None or turn.status is TurnStatus.AWAITING_AI):
                bounds = {
                    "conversation_id": conversation.conversation_id,
                    "seen": conversation.ai_seen_sequence_no,
                    "first": messages[0].sequence_no,
                    "limit": CONTEXT_LIMIT,
                }
                context = tuple(entity(row, Message) for row in cursor.execute(_CONTEXT, bounds))
        if turn is None and not messages:
            return None
        return Work(conversation, _credits(head, conversation.user_id), turn, messages, context)

    @staticmethod
    def _read_ahead(
        cursor: psycopg.Cursor[DictRow], conversation_id: int
    ) -> tuple[DictRow | None, list[DictRow], list[DictRow]]:
        """The head of a conversation's work, with its batch and context as they are when no turn is open,
        in one round trip (pipeline mode): a conversation's scope names the conversation, so the three reads
        do not wait for one another. When a turn is open (a worker stopped mid-turn), the batch and context
        read here are not used: that turn's own messages are read after."""
        conn = cursor.connection
        head, batch, context = (conn.cursor(row_factory=dict_row) for _ in range(3))
        with conn.pipeline():
            head.execute(_HEAD[OrderingScope.CONVERSATION], {"scope": conversation_id})
            batch.execute(_BATCH[OrderingScope.CONVERSATION], {"conversation_id": conversation_id})
            context.execute(_PENDING_CONTEXT, {"conversation_id": conversation_id, "limit": CONTEXT_LIMIT})
        return head.fetchone(), batch.fetchall(), context.fetchall()

    def has_pending(self, scope: ScopeKey) -> bool:
        value: object = int(scope.value) if scope.kind is OrderingScope.CONVERSATION else scope.value
        with self._autocommit() as cursor:
            row = cursor.execute(_HAS_PENDING[scope.kind], (value,)).fetchone()
        return bool(row and row["pending"])

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        with self._autocommit() as cursor:
            rows = cursor.execute(_STALLED[ordering], {"older_than": older_than, "limit": limit}).fetchall()
        return [ScopeKey(ordering, row["scope"]) for row in rows]

    # --- saving what the domain decided ---------------------------------------------------------------

    def start(self, started: TurnStarted) -> Turn | None:
        params = {
            "user_id": started.user_id,
            "conversation_id": started.conversation_id,
            "phone_number_id": started.phone_number_id,
            "status": TurnStatus.AWAITING_AI.value,
            "credits_reserved": started.credits_reserved,
            "now": started.at,
            **movement_params(started.hold),
            **_batch_params(started.batch),
        }
        try:
            with self._autocommit() as cursor, refused_when_negative():
                row = cursor.execute(_START, params).fetchone()
        except InsufficientCredits:
            return None
        return None if row is None else entity(row, Turn)

    def refuse(self, refused: TurnRefused) -> None:
        with self._autocommit() as cursor:
            cursor.execute(_REFUSE, {"now": refused.at, **_batch_params(refused.batch)})

    def hold(self, held: TurnHeld) -> bool:
        conversation = held.conversation
        params = {
            "conversation_id": conversation.conversation_id,
            "bot": conversation.bot.value,
            "paused_until": conversation.bot_paused_until,
            "channel_bot": held.channel_bot.value,
            "now": held.at,
            **_batch_params(held.batch),
        }
        with self._autocommit() as cursor:
            row = cursor.execute(_HOLD, params).fetchone()
        return bool(row and row["held"])

    def pauses_run_out(self, now: datetime, limit: int) -> list[tuple[str, int]]:
        with self._autocommit() as cursor:
            rows = cursor.execute(_PAUSES_RUN_OUT, {"now": now, "limit": limit}).fetchall()
        return [(row["user_id"], row["conversation_id"]) for row in rows]

    def save_turn(self, turn: Turn, before: TurnStatus) -> bool:
        with self._autocommit() as cursor:
            saved = cursor.execute(
                _SAVE_TURN,
                {
                    "status": turn.status.value,
                    "attempts": turn.attempts,
                    "response_id": turn.response_id,
                    "failure_reason": turn.failure_reason,
                    "now": turn.updated_at,
                    "turn_id": turn.turn_id,
                    "before": before.value,
                },
            )
            return saved.rowcount == 1

    def link_ai(self, conversation: Conversation) -> None:
        with self._autocommit() as cursor:
            cursor.execute(_LINK_AI, (conversation.openai_conversation_id, conversation.conversation_id))

    def answer(self, answered: TurnAnswered) -> tuple[Message, ...] | None:
        turn, first = answered.turn, answered.parts[0]
        params = {
            "turn_id": turn.turn_id,
            "before": answered.before.value,
            "status": turn.status.value,
            "response_id": turn.response_id,
            "input_tokens": first.input_tokens,
            "output_tokens": first.output_tokens,
            "user_id": turn.user_id,
            "conversation_id": turn.conversation_id,
            "phone_number_id": turn.phone_number_id,
            "last_item_id": answered.last_item_id,
            "count": len(answered.parts),
            "texts": [part.text for part in answered.parts],
            "statuses": [part.status.value for part in answered.parts],
            "in_tokens": [part.input_tokens for part in answered.parts],
            "out_tokens": [part.output_tokens for part in answered.parts],
            "now": turn.updated_at,
            **movement_params(answered.charge),
            **_batch_params(answered.batch),
        }
        with self._autocommit() as cursor, refused_when_negative():
            rows = cursor.execute(_ANSWER, params).fetchall()
        return tuple(entity(row, Message) for row in rows) or None

    def fail(self, failed: TurnFailed) -> bool:
        turn = failed.turn
        params = {
            "turn_id": turn.turn_id,
            "before": failed.before.value,
            "status": turn.status.value,
            "failure_reason": turn.failure_reason,
            "now": turn.updated_at,
            **movement_params(failed.release),
            **_batch_params(failed.batch),
        }
        with self._autocommit() as cursor:
            row = cursor.execute(_FAIL, params).fetchone()
        return bool(row and row["failed"])

    def save_part(self, change: PartChange) -> bool:
        part, done = change.part, change.turn_done
        with self._autocommit() as cursor:
            row = cursor.execute(
                _SAVE_PART,
                {
                    "status": part.status.value,
                    "platform_message_id": part.platform_message_id,
                    "sent_at": part.sent_at,
                    "failure_code": part.failure_code,
                    "failure_reason": part.failure_reason,
                    "now": part.updated_at,
                    "message_id": part.message_id,
                    "before": change.before.value,
                    "turn_status": None if done is None else done.status.value,
                    "turn_before": None if change.turn_before is None else change.turn_before.value,
                },
            ).fetchone()
        return bool(row and row["saved"])


def _credits(head: DictRow, user_id: str) -> Credits:
    if head["cr_balance"] is None:
        return Credits.none(user_id, NEVER)
    return Credits(user_id, head["cr_balance"], head["cr_reserved"], head["cr_updated_at"])
