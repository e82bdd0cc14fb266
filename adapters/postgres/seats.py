"""The agents' seats on their channels in PostgreSQL: what a relink reads (locked), and its decision saved.

Both run in the unit of work's transaction. `seat` locks FOR UPDATE, in this order: the agent's row
(the webhook's `record_inbound` takes it FOR KEY SHARE, so no message lands in a conversation being
archived), its active conversations on the channel (a worker's `start` takes the conversation FOR KEY
SHARE), their turns awaiting the AI (a worker's `answer` updates the turn) and their unanswered
messages. Every later statement of the transaction sees what those writers committed before they let go.
"""

from __future__ import annotations

from typing import LiteralString

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.conversations import CONVERSATION_COLUMNS
from adapters.postgres.credits import move_credits, movement_params
from adapters.postgres.messages import MESSAGE_COLUMNS
from adapters.postgres.rows import entity
from adapters.postgres.tenancy import save_agent
from adapters.postgres.turn_store import TURN_COLUMNS
from domain.conversations import Conversation
from domain.errors import InvalidTransition
from domain.messages import Message
from domain.relink import Relink, Reopened, Seat
from domain.tenancy import Agent
from domain.turns import Turn

_LOCK_AGENT: LiteralString = "SELECT agent_id FROM agents WHERE agent_id = %s FOR UPDATE"

_CONVERSATIONS = f"""
SELECT {CONVERSATION_COLUMNS} FROM conversations
WHERE agent_id = %s AND phone_number_id = %s AND is_active ORDER BY conversation_id FOR UPDATE
"""

# Its conversations by `ANY` are not the trap `_UNANSWERED` avoids: every index on `turns` holds the open
# turns only, which `status = 'awaiting_ai'` implies, and on a table never analysed, a thousand or a hundred
# thousand finished turns in it, the plan kept is one of those indexes, never a scan of the table.
_WAITING = f"""
SELECT {TURN_COLUMNS} FROM turns
WHERE conversation_id = ANY(%s) AND status = 'awaiting_ai' ORDER BY turn_id FOR UPDATE
"""

# Each conversation's messages are read, and locked, on their own: the plan PostgreSQL keeps for this
# prepared statement may be made while `messages` is small, and for `conversation_id = ANY(...)` it is a
# sequential scan of the whole table (see `_SKIP`). The lock inside the LATERAL subquery keeps it from
# being flattened into a join that could be planned the same way: it is run once per conversation, on
# the conversation's index at any size, in one round trip. The rows and their order are those of one
# `ORDER BY conversation_id, sequence_no ... FOR UPDATE`, and so is the order they are locked in: the
# seat's conversations come in order, each one's messages by sequence number.
_UNANSWERED = f"""
SELECT {MESSAGE_COLUMNS}
FROM unnest(%(conversations)s::bigint[]) AS seated(conversation)
CROSS JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE conversation_id = seated.conversation AND direction = 'inbound'
      AND (status IN ('received', 'held') OR (status = 'processing' AND message_id = ANY(%(in_turns)s)))
    ORDER BY sequence_no FOR UPDATE
) AS unanswered
ORDER BY conversation_id, sequence_no
"""

_ARCHIVE: LiteralString = """
WITH archived AS (
    UPDATE conversations SET is_active = false WHERE conversation_id = %(conversation_id)s AND is_active
    RETURNING conversation_id
)
INSERT INTO conversation_archives (user_id, conversation_id, old_agent_id, new_agent_id, phone_number_id, archived_at)
SELECT %(user_id)s, conversation_id, %(old_agent_id)s, %(new_agent_id)s, %(phone_number_id)s, %(at)s FROM archived
"""

_WITHDRAW = (
    """
    WITH failed AS (
        UPDATE turns SET status = %(status)s, failure_reason = %(failure_reason)s, updated_at = %(now)s
        WHERE turn_id = %(turn_id)s AND status = %(before)s
        RETURNING turn_id
    ),"""
    + move_credits(gate="failed")
    + """
    SELECT count(*) AS failed FROM failed
    """
)

# The conversation leads the condition although the ids alone would do: the plan PostgreSQL keeps for a
# prepared statement may be made while the table is small, and for ids alone it is a sequential scan of
# `messages` (see `_batch_change` in turn_store.py). The conversation's index is the plan at any size.
_SKIP: LiteralString = """
UPDATE messages SET status = %(after)s, failure_reason = %(reason)s, updated_at = %(now)s
WHERE conversation_id = %(conversation_id)s AND message_id = ANY(%(ids)s) AND direction = 'inbound'
  AND status = %(before)s
"""

_REOPEN: LiteralString = """
INSERT INTO conversations (
    user_id, agent_id, phone_number_id, customer_id, customer_name, last_sequence_no, created_at, last_message_at,
    last_customer_message_at)
VALUES (%(user_id)s, %(agent_id)s, %(phone_number_id)s, %(customer_id)s, %(customer_name)s, %(last_sequence_no)s,
        %(at)s, %(at)s, %(last_customer_message_at)s)
RETURNING conversation_id
"""

_CARRY: LiteralString = """
UPDATE messages AS m
SET conversation_id = %(conversation_id)s, sequence_no = carried.sequence_no, status = 'received',
    failure_reason = NULL, turn_id = NULL, updated_at = %(at)s
FROM unnest(%(ids)s::bigint[], %(sequence_nos)s::integer[], %(befores)s::text[], %(froms)s::bigint[])
     AS carried(message_id, sequence_no, before, from_conversation_id)
WHERE m.message_id = carried.message_id AND m.status = carried.before
  AND m.conversation_id = carried.from_conversation_id
"""


class PostgresSeatsRepository(PostgresRepository):
    def seat(self, agent: Agent) -> Seat:
        cursor = self._cursor()
        cursor.execute(_LOCK_AGENT, (agent.agent_id,))
        conversations = tuple(
            entity(row, Conversation)
            for row in cursor.execute(_CONVERSATIONS, (agent.agent_id, agent.phone_number_id)).fetchall()
        )
        ids = [c.conversation_id for c in conversations]
        if not ids:
            return Seat(agent, (), (), ())
        waiting = tuple(entity(row, Turn) for row in cursor.execute(_WAITING, (ids,)).fetchall())
        in_turns = [message_id for turn in waiting for message_id in turn.inbound_ids]
        unanswered = tuple(
            entity(row, Message)
            for row in cursor.execute(_UNANSWERED, {"conversations": ids, "in_turns": in_turns}).fetchall()
        )
        return Seat(agent, conversations, waiting, unanswered)

    def save(self, relink: Relink) -> tuple[int, ...]:
        cursor = self._cursor()
        for agent in relink.agents:
            save_agent(cursor, agent)
        for departure in relink.departures:
            for archived in departure.archived:
                cursor.execute(
                    _ARCHIVE,
                    {
                        "conversation_id": archived.conversation_id,
                        "user_id": archived.user_id,
                        "old_agent_id": archived.old_agent_id,
                        "new_agent_id": archived.new_agent_id,
                        "phone_number_id": archived.phone_number_id,
                        "at": archived.at,
                    },
                )
            for withdrawn in departure.withdrawn:
                turn = withdrawn.turn
                row = cursor.execute(
                    _WITHDRAW,
                    {
                        "turn_id": turn.turn_id,
                        "before": withdrawn.before.value,
                        "status": turn.status.value,
                        "failure_reason": turn.failure_reason,
                        "now": turn.updated_at,
                        **movement_params(withdrawn.release),
                    },
                ).fetchone()
                if not (row and row["failed"]):
                    raise InvalidTransition(f"turn {turn.turn_id} moved on while the relink was decided")
            for change in departure.skipped:
                cursor.execute(
                    _SKIP,
                    {
                        "after": change.after.value,
                        "reason": change.reason,
                        "now": relink.at,
                        "conversation_id": change.conversation_id,
                        "ids": list(change.message_ids),
                        "before": change.before.value,
                    },
                )
        return tuple(self._reopen(reopened) for reopened in relink.reopened)

    def _reopen(self, reopened: Reopened) -> int:
        cursor = self._cursor()
        row = cursor.execute(
            _REOPEN,
            {
                "user_id": reopened.user_id,
                "agent_id": reopened.agent_id,
                "phone_number_id": reopened.phone_number_id,
                "customer_id": reopened.customer_id,
                "customer_name": reopened.customer_name,
                "last_sequence_no": reopened.last_sequence_no,
                "at": reopened.at,
                "last_customer_message_at": reopened.last_customer_message_at,
            },
        ).fetchone()
        assert row is not None
        conversation_id: int = row["conversation_id"]
        carried = reopened.messages
        moved = cursor.execute(
            _CARRY,
            {
                "conversation_id": conversation_id,
                "at": reopened.at,
                "ids": [c.message_id for c in carried],
                "sequence_nos": [c.sequence_no for c in carried],
                "befores": [c.before.value for c in carried],
                "froms": [c.from_conversation_id for c in carried],
            },
        )
        if moved.rowcount != len(carried):
            raise InvalidTransition(f"messages of conversation {conversation_id} moved on while the relink was decided")
        return conversation_id
