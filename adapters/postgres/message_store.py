"""The webhook's storage in PostgreSQL: a customer's message stored in one statement, and the channel's
delivery reports about ours saved conditional on what they were decided from."""

from __future__ import annotations

from datetime import datetime
from typing import LiteralString

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from adapters.postgres._sql import PostgresStore
from adapters.postgres.messages import MESSAGE_COLUMNS
from adapters.postgres.rows import entity
from application.ports.pipeline import MessageNotStorable
from domain.messages import BusinessEcho, InboundMessage, Message, RecordedInbound
from domain.tenancy import Route

_EXISTING_INBOUND: LiteralString = """
SELECT message_id, conversation_id, sequence_no, true AS duplicate FROM messages
WHERE phone_number_id = %(phone_number_id)s AND platform_message_id = %(platform_message_id)s
"""

# `Conversation.open` and `Conversation.receive` in one round trip, atomically: the upsert takes the
# conversation's row lock and holds it until the statement ends, so concurrent messages of one
# conversation get their sequence numbers in commit order, and the window is counted from the latest
# message the customer sent. The NOT EXISTS skips the upsert for a redelivery already stored, so the
# usual (sequential) duplicate neither burns a sequence number nor opens a conversation. Two copies
# arriving at the same moment both pass it; the message insert then keeps one, and the other leaves a
# gap in the conversation's sequence numbers (harmless: order is all they promise).
# `linked` keeps a stale route (read before a relink) from storing into the old agent's conversations:
# the agent must still hold the channel, and its row is held FOR KEY SHARE until the statement ends, so a
# relink (which locks it FOR UPDATE before it reads what to archive) sees this message, or this
# statement waits for the relink and then finds the agent gone from the channel (and stores nothing).
# KEY SHARE, the weakest lock: concurrent messages do not wait for each other, nor for a name or
# prompt change of the agent.
_RECORD_INBOUND = (
    """
WITH linked AS (
    SELECT agent_id FROM agents
    WHERE agent_id = %(agent_id)s AND phone_number_id = %(phone_number_id)s AND deleted_at IS NULL
    FOR KEY SHARE
), conversation AS (
    INSERT INTO conversations AS c (
        user_id, agent_id, phone_number_id, customer_id, customer_name,
        last_sequence_no, created_at, last_message_at, last_customer_message_at)
    SELECT %(user_id)s, linked.agent_id, %(phone_number_id)s, %(customer_id)s, %(customer_name)s,
           1, %(now)s, %(now)s, %(sent_at)s
    FROM linked
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
        user_id, conversation_id, phone_number_id, direction, sender, sequence_no, platform_message_id,
        content_type, text, status, failure_reason, raw, sent_at, created_at, updated_at)
    SELECT %(user_id)s, conversation_id, %(phone_number_id)s, 'inbound', 'customer', last_sequence_no,
           %(platform_message_id)s,
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

# `Conversation.echo` (and `Conversation.start` for a conversation the business begins) in one statement,
# as `_RECORD_INBOUND` does for a customer's message: numbered next, and taken over (`take_over`: paused
# until resumed, a pause in place kept as it is). The message is stored `sent`: it reached the customer.
# `in_flight` is `BusinessEcho.is_our_send_in_flight` over the parts of the customer's active conversation
# (found through the few `sending` messages of the user): an echo of one of them is our own send, stored
# already, and neither stored nor pausing. In the same statement, so in the same snapshot as the check
# of the platform id: the worker's `sent` with that id is either seen (a duplicate) or not yet, and then
# the part is still seen `sending`, since it was committed so before the send. A stored platform id wins.
_RECORD_ECHO: LiteralString = """
WITH in_flight AS (
    SELECT m.message_id FROM messages m JOIN conversations c ON c.conversation_id = m.conversation_id
    WHERE m.user_id = %(user_id)s AND m.status = 'sending' AND m.direction = 'outbound'
      AND m.phone_number_id = %(phone_number_id)s AND m.text = %(text)s
      AND c.agent_id = %(agent_id)s AND c.customer_id = %(customer_id)s AND c.is_active
    LIMIT 1
), stored AS (
    SELECT message_id, conversation_id, sequence_no FROM messages
    WHERE phone_number_id = %(phone_number_id)s AND platform_message_id = %(platform_message_id)s
), conversation AS (
    INSERT INTO conversations AS c (
        user_id, agent_id, phone_number_id, customer_id, last_sequence_no, created_at, last_message_at, bot)
    SELECT %(user_id)s, %(agent_id)s, %(phone_number_id)s, %(customer_id)s, 1, %(now)s, %(now)s, 'paused'
    WHERE NOT EXISTS (SELECT 1 FROM stored) AND NOT EXISTS (SELECT 1 FROM in_flight)
    ON CONFLICT (agent_id, customer_id) WHERE is_active DO UPDATE SET
        last_sequence_no = c.last_sequence_no + 1,
        last_message_at = greatest(c.last_message_at, excluded.last_message_at),
        bot = 'paused',
        bot_paused_until = CASE WHEN c.bot = 'paused' THEN c.bot_paused_until END
    RETURNING conversation_id, last_sequence_no
), inserted AS (
    INSERT INTO messages (
        user_id, conversation_id, phone_number_id, direction, sender, sequence_no, platform_message_id,
        content_type, text, status, raw, sent_at, created_at, updated_at)
    SELECT %(user_id)s, conversation_id, %(phone_number_id)s, 'outbound', 'human', last_sequence_no,
           %(platform_message_id)s, %(content_type)s, %(text)s, 'sent', %(raw)s, %(sent_at)s, %(now)s, %(now)s
    FROM conversation
    ON CONFLICT (phone_number_id, platform_message_id) WHERE platform_message_id IS NOT NULL DO NOTHING
    RETURNING message_id, conversation_id, sequence_no
)
SELECT message_id, conversation_id, sequence_no, false AS duplicate, false AS own_send FROM inserted
UNION ALL
SELECT message_id, conversation_id, sequence_no, true, false FROM stored WHERE NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT NULL, NULL, NULL, false, true FROM in_flight WHERE NOT EXISTS (SELECT 1 FROM stored)
"""

#: What PostgreSQL (or psycopg, before sending) refuses for what a message holds, as opposed to being away:
#: NUL or a lone surrogate in a text (psycopg cannot even encode the latter), JSON it cannot read, a
#: value over a type's range or an index entry's size, a constraint the message breaks.
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, errors.ProgramLimitExceeded, UnicodeEncodeError)

# Reports about a deleted channel's messages are ignored, like its customers' messages.
_OUTBOUND = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE phone_number_id = %(id)s AND platform_message_id = %(platform_id)s AND direction = 'outbound'
  AND NOT EXISTS (SELECT 1 FROM phone_numbers WHERE phone_number_id = %(id)s AND deleted_at IS NOT NULL)
"""

_INBOUND = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE phone_number_id = %(id)s AND platform_message_id = %(platform_id)s AND direction = 'inbound'
"""

# Conditional on what the report was decided from: a concurrent report that got there first makes this
# one match nothing, and the use case reads the message again.
_SAVE_REPORT: LiteralString = """
UPDATE messages
SET status = %(status)s, sent_at = %(sent_at)s, failure_code = %(code)s, failure_reason = %(reason)s,
    updated_at = %(now)s
WHERE message_id = %(message_id)s AND status = %(was_status)s AND sent_at IS NOT DISTINCT FROM %(was_sent_at)s
  AND failure_code IS NOT DISTINCT FROM %(was_code)s AND failure_reason IS NOT DISTINCT FROM %(was_reason)s
"""

# Conditional on the very version the retry was decided from: of two concurrent retries, one saves.
_SAVE_RETRY: LiteralString = """
UPDATE messages
SET status = %(status)s, failure_code = %(code)s, failure_reason = %(reason)s, updated_at = %(now)s
WHERE message_id = %(message_id)s AND status = %(was_status)s AND updated_at = %(was_updated_at)s
"""


class PostgresMessageStore(PostgresStore):
    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound | None:
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
            "status": inbound.status.value,
            "failure_reason": inbound.failure_reason,
            "raw": Jsonb(inbound.raw),
            "sent_at": inbound.sent_at,
            "now": now,
        }
        try:
            with self._autocommit() as cursor:
                row = cursor.execute(_RECORD_INBOUND, params).fetchone()
                if row is None:
                    # A concurrent copy committed while this statement waited on it, after this statement's
                    # snapshot was taken; a new statement sees it.
                    row = cursor.execute(_EXISTING_INBOUND, params).fetchone()
        except _REFUSED as error:
            raise MessageNotStorable(_refusal(error)) from error
        if row is None:
            return None  # neither stored nor found: the agent no longer holds the channel
        return entity(row, RecordedInbound)

    def record_echo(self, route: Route, echo: BusinessEcho, now: datetime) -> RecordedInbound | None:
        if route.agent is None:
            raise ValueError(f"channel {route.channel.phone_number_id} has no agent to record a conversation with")
        params = {
            "user_id": route.user_id,
            "agent_id": route.agent.agent_id,
            "phone_number_id": route.channel.phone_number_id,
            "customer_id": echo.customer_id,
            "platform_message_id": echo.platform_message_id,
            "content_type": echo.content_type,
            "text": echo.text,
            "raw": Jsonb(echo.raw),
            "sent_at": echo.sent_at,
            "now": now,
        }
        try:
            with self._autocommit() as cursor:
                row = cursor.execute(_RECORD_ECHO, params).fetchone()
                if row is None:
                    row = cursor.execute(_EXISTING_INBOUND, params).fetchone()
        except _REFUSED as error:
            raise MessageNotStorable(_refusal(error)) from error
        if row is None:
            raise RuntimeError(f"echo {echo.platform_message_id} was neither stored nor found")
        if row.get("own_send"):
            return None
        return entity(row, RecordedInbound)

    def outbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        with self._autocommit() as cursor:
            row = cursor.execute(_OUTBOUND, {"id": phone_number_id, "platform_id": platform_message_id}).fetchone()
        return None if row is None else entity(row, Message)

    def save_report(self, before: Message, after: Message) -> bool:
        with self._autocommit() as cursor:
            saved = cursor.execute(
                _SAVE_REPORT,
                {
                    "status": after.status.value,
                    "sent_at": after.sent_at,
                    "code": after.failure_code,
                    "reason": after.failure_reason,
                    "now": after.updated_at,
                    "message_id": before.message_id,
                    "was_status": before.status.value,
                    "was_sent_at": before.sent_at,
                    "was_code": before.failure_code,
                    "was_reason": before.failure_reason,
                },
            )
            return saved.rowcount == 1

    def inbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        with self._autocommit() as cursor:
            row = cursor.execute(_INBOUND, {"id": phone_number_id, "platform_id": platform_message_id}).fetchone()
        return None if row is None else entity(row, Message)

    def save_deletion(self, before: Message, after: Message) -> bool:
        # The same conditional change of status and failure as a retry: what the domain decided, if the
        # message is still as it was decided from (a worker may have taken it meanwhile).
        return self._save_status(before, after)

    def save_retry(self, before: Message, after: Message) -> bool:
        return self._save_status(before, after)

    def _save_status(self, before: Message, after: Message) -> bool:
        with self._autocommit() as cursor:
            saved = cursor.execute(
                _SAVE_RETRY,
                {
                    "status": after.status.value,
                    "code": after.failure_code,
                    "reason": after.failure_reason,
                    "now": after.updated_at,
                    "message_id": before.message_id,
                    "was_status": before.status.value,
                    "was_updated_at": before.updated_at,
                },
            )
            return saved.rowcount == 1


def _refusal(error: Exception) -> str:
    if isinstance(error, psycopg.Error) and error.sqlstate:
        return f"{error.sqlstate} {error.diag.message_primary}"
    return str(error)
