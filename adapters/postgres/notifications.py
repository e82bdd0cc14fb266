"""Notifications in PostgreSQL, their settings, and the facts about accounts the sweep decides from.

The fact queries only gather: which users, channels and conversations to look at and their figures.
What is worth a notification, and whether it was told already, is `domain.notifications`' call (its
`dedup_key`s meet `notifications_once` here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, LiteralString

from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
from application.ports.lead_storage import NotificationCursor, NotificationPage, NotificationQuery
from domain.extraction import HotLeadThresholds
from domain.notifications import (
    DEFAULT_CREDITS_LOW_AT,
    BalanceFacts,
    NewNotification,
    Notification,
    NotificationSettings,
    SendFailures,
    WaitingConversation,
)
from domain.turns import INSUFFICIENT_CREDITS

NOTIFICATION_COLUMNS = (
    "notification_id, user_id, kind, title, dedup_key, created_at, conversation_id, phone_number_id, data, read_at"
)

_ADD: LiteralString = f"""
INSERT INTO notifications (user_id, kind, title, dedup_key, created_at, conversation_id, phone_number_id, data)
VALUES (%(user_id)s, %(kind)s, %(title)s, %(dedup_key)s, %(created_at)s, %(conversation_id)s, %(phone_number_id)s,
        %(data)s)
ON CONFLICT (user_id, dedup_key) DO NOTHING
RETURNING {NOTIFICATION_COLUMNS}
"""

# A read state is written `(read_at IS NOT NULL) IS FALSE`, not `read_at IS NULL`: the planner matches the
# former to notifications_user_idx's second key (the expression it indexes), and would rewrite `= false`
# into the latter, which that index cannot serve.
_READ_STATE: Mapping[bool, sql.SQL] = {
    False: sql.SQL("(read_at IS NOT NULL) IS FALSE"),
    True: sql.SQL("(read_at IS NOT NULL) IS TRUE"),
}

_UNREAD_COUNT: LiteralString = """
SELECT count(*) AS unread FROM notifications WHERE user_id = %s AND (read_at IS NOT NULL) IS FALSE
"""

_SAVE_SETTINGS: LiteralString = """
INSERT INTO notification_settings (user_id, hot_lead, credits_low_at, updated_at)
VALUES (%(user_id)s, %(hot_lead)s, %(credits_low_at)s, now())
ON CONFLICT (user_id) DO UPDATE
SET hot_lead = excluded.hot_lead, credits_low_at = excluded.credits_low_at, updated_at = excluded.updated_at
"""

# Per user: what is available, the threshold, the latest top-up (credit_ledger_top_up_idx: the kind is
# written in, so that even a generic plan can use that partial index) and the messages refused for want
# of credits since it (messages_user_status_idx). An account never credited has no `credits` row; its user
# comes in only with refusals.
_BALANCES: LiteralString = """
SELECT user_id, available, credits_low_at, top_up_id, refused_since_top_up FROM (
    SELECT u.user_id, c.user_id IS NOT NULL AS credited, coalesce(c.balance - c.reserved, 0) AS available,
           coalesce(s.credits_low_at, %(default_low_at)s) AS credits_low_at,
           coalesce(top_up.entry_id, 0) AS top_up_id, refused.count AS refused_since_top_up
    FROM users u
    LEFT JOIN credits c ON c.user_id = u.user_id
    LEFT JOIN notification_settings s ON s.user_id = u.user_id
    LEFT JOIN LATERAL (
        SELECT l.entry_id, l.created_at FROM credit_ledger l
        WHERE l.user_id = u.user_id AND l.kind = 'top_up' ORDER BY l.entry_id DESC LIMIT 1
    ) top_up ON true
    CROSS JOIN LATERAL (
        SELECT count(*) AS count FROM messages m
        WHERE m.user_id = u.user_id AND m.status = 'failed' AND m.direction = 'inbound'
          AND m.failure_reason = %(refusal)s AND (top_up.created_at IS NULL OR m.created_at > top_up.created_at)
    ) refused
) account
WHERE (credited AND available <= credits_low_at) OR refused_since_top_up > 0
ORDER BY user_id
"""

# messages_failed_outbound_idx: failed sends are few, and only the last minutes' are read.
_SEND_FAILURES: LiteralString = """
SELECT user_id, phone_number_id, coalesce(failure_code, '') AS code, count(*) AS failed,
       max(updated_at) AS last_failure_at
FROM messages
WHERE status = 'failed' AND direction = 'outbound' AND updated_at >= %s
GROUP BY user_id, phone_number_id, coalesce(failure_code, '')
ORDER BY user_id, phone_number_id, code
"""

# The held messages (messages_held_*_idx), by conversation: the first one names the wait.
_WAITING: LiteralString = """
SELECT c.user_id, c.conversation_id, c.phone_number_id, held.first_held_message_id, held.held, held.waiting_since
FROM (
    SELECT conversation_id, count(*) AS held,
           (array_agg(message_id ORDER BY sequence_no))[1] AS first_held_message_id,
           (array_agg(created_at ORDER BY sequence_no))[1] AS waiting_since
    FROM messages WHERE status = 'held'
    GROUP BY conversation_id
) held
JOIN conversations c ON c.conversation_id = held.conversation_id
ORDER BY c.conversation_id
"""


class PostgresNotificationsRepository(PostgresRepository):
    def add(self, new: NewNotification) -> Notification | None:
        row = (
            self._cursor()
            .execute(
                _ADD,
                {
                    "user_id": new.user_id,
                    "kind": new.kind.value,
                    "title": new.title,
                    "dedup_key": new.dedup_key,
                    "created_at": new.created_at,
                    "conversation_id": new.conversation_id,
                    "phone_number_id": new.phone_number_id,
                    "data": Jsonb(dict(new.data)),
                },
            )
            .fetchone()
        )
        return None if row is None else entity(row, Notification)

    def get(self, user_id: str, notification_id: int) -> Notification | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE notification_id = %s AND user_id = %s",
                (notification_id, user_id),
            )
            .fetchone()
        )
        return None if row is None else entity(row, Notification)

    def save_read(self, notification: Notification) -> None:
        self._cursor().execute(
            "UPDATE notifications SET read_at = %s WHERE notification_id = %s AND user_id = %s",
            (notification.read_at, notification.notification_id, notification.user_id),
        )

    def mark_all_read(self, user_id: str, now: datetime) -> int:
        marked = self._cursor().execute(
            "UPDATE notifications SET read_at = %s WHERE user_id = %s AND (read_at IS NOT NULL) IS FALSE",
            (now, user_id),
        )
        return marked.rowcount

    def unread_count(self, user_id: str) -> int:
        row = self._cursor().execute(_UNREAD_COUNT, (user_id,)).fetchone()
        return int(row["unread"]) if row is not None else 0

    def settings(self, user_id: str) -> NotificationSettings:
        row = (
            self._cursor()
            .execute("SELECT hot_lead, credits_low_at FROM notification_settings WHERE user_id = %s", (user_id,))
            .fetchone()
        )
        if row is None:
            return NotificationSettings(user_id)
        return NotificationSettings(user_id, HotLeadThresholds(dict(row["hot_lead"])), row["credits_low_at"])

    def save_settings(self, settings: NotificationSettings) -> None:
        self._cursor().execute(
            _SAVE_SETTINGS,
            {
                "user_id": settings.user_id,
                "hot_lead": Jsonb(dict(settings.hot_lead.minimums)),
                "credits_low_at": settings.credits_low_at,
            },
        )

    def balances_to_check(self) -> list[BalanceFacts]:
        """Users whose available credits are at or under their `credits_low_at` (DEFAULT_CREDITS_LOW_AT
        unless they chose one), or who had messages refused for want of credits since their latest top-up
        (any, when they never topped up). A user whose account was never credited (no `credits` row) is
        included only with refusals: a new account at 0 has nothing to run low, and hearing "credits low"
        before a first top-up is not news; a message left unanswered is."""
        rows = self._cursor().execute(
            _BALANCES,
            {"default_low_at": DEFAULT_CREDITS_LOW_AT, "refusal": INSUFFICIENT_CREDITS},
        )
        return [entity(row, BalanceFacts) for row in rows]

    def send_failures(self, since: datetime) -> list[SendFailures]:
        by_channel: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        last: dict[tuple[str, str], datetime] = {}
        for row in self._cursor().execute(_SEND_FAILURES, (since,)):
            channel = (row["user_id"], row["phone_number_id"])
            by_channel[channel][row["code"]] = row["failed"]
            last[channel] = max(last.get(channel, row["last_failure_at"]), row["last_failure_at"])
        return [
            SendFailures(user_id, phone_number_id, codes, last[(user_id, phone_number_id)])
            for (user_id, phone_number_id), codes in by_channel.items()
        ]

    def waiting_for_human(self) -> list[WaitingConversation]:
        return [entity(row, WaitingConversation) for row in self._cursor().execute(_WAITING)]

    def list(self, user_id: str, query: NotificationQuery) -> NotificationPage:
        """Unread first, then read, each newest first: one branch per read state, each a range of
        notifications_user_idx that starts at the cursor, so a page costs what it shows."""
        filters = [sql.SQL("user_id = %(user_id)s")]
        if query.kind is not None:
            filters.append(sql.SQL("kind = %(kind)s"))
        if query.conversation_id is not None:
            filters.append(sql.SQL("conversation_id = %(conversation_id)s"))
        if query.since is not None:
            filters.append(sql.SQL("created_at >= %(since)s"))
        if query.until is not None:
            filters.append(sql.SQL("created_at < %(until)s"))
        cursor = query.cursor
        branches: list[sql.Composable] = []
        for read in (False, True):
            if query.read is not None and query.read is not read:
                continue
            if cursor is not None and cursor.read and not read:
                continue  # the page resumes among the read ones: every unread one was shown
            conditions = [*filters, _READ_STATE[read]]
            if cursor is not None and cursor.read is read:
                conditions.append(sql.SQL("notification_id < %(after_id)s"))
            branches.append(
                sql.SQL(
                    "(SELECT {columns} FROM notifications WHERE {conditions}"
                    " ORDER BY notification_id DESC LIMIT %(limit)s)"
                ).format(columns=sql.SQL(NOTIFICATION_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
            )
        if not branches:
            return NotificationPage(items=[], next_cursor=None)
        statement = sql.SQL(
            "SELECT * FROM ({branches}) AS page ORDER BY (read_at IS NOT NULL), notification_id DESC LIMIT %(limit)s"
        ).format(branches=sql.SQL(" UNION ALL ").join(branches))
        params: dict[str, Any] = {
            "user_id": user_id,
            "kind": None if query.kind is None else query.kind.value,
            "conversation_id": query.conversation_id,
            "since": query.since,
            "until": query.until,
            "after_id": None if cursor is None else cursor.notification_id,
            "limit": query.limit + 1,
        }
        rows = self._cursor().execute(statement, params, prepare=False).fetchall()
        items = [entity(row, Notification) for row in rows[: query.limit]]
        last = items[-1] if len(rows) > query.limit else None
        return NotificationPage(
            items=items, next_cursor=None if last is None else NotificationCursor(last.read, last.notification_id)
        )
