"""Notifications in memory, their settings, and the facts about accounts the sweep decides from."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from application.ports.lead_storage import NotificationCursor, NotificationPage, NotificationQuery
from domain.credits import LedgerKind
from domain.messages import Direction, Message, MessageStatus
from domain.notifications import (
    BalanceFacts,
    NewNotification,
    Notification,
    NotificationSettings,
    SendFailures,
    WaitingConversation,
)
from domain.turns import INSUFFICIENT_CREDITS


class InMemoryNotificationsRepository(InMemoryRepository):
    def add(self, new: NewNotification) -> Notification | None:
        if any(n.user_id == new.user_id and n.dedup_key == new.dedup_key for n in self.t.notifications.values()):
            return None
        stored = Notification.stored(self.t.next_id("notifications"), new)
        self.t.notifications[stored.notification_id] = stored
        return stored

    def get(self, user_id: str, notification_id: int) -> Notification | None:
        found = self.t.notifications.get(notification_id)
        return found if found is not None and found.user_id == user_id else None

    def save_read(self, notification: Notification) -> None:
        current = self.get(notification.user_id, notification.notification_id)
        if current is not None:
            self.t.notifications[current.notification_id] = evolve(current, read_at=notification.read_at)

    def mark_all_read(self, user_id: str, now: datetime) -> int:
        unread = [n for n in self.t.notifications.values() if n.user_id == user_id and not n.read]
        for notification in unread:
            self.t.notifications[notification.notification_id] = notification.mark(read=True, now=now)
        return len(unread)

    def unread_count(self, user_id: str) -> int:
        return sum(1 for n in self.t.notifications.values() if n.user_id == user_id and not n.read)

    def settings(self, user_id: str) -> NotificationSettings:
        return self.t.notification_settings.get(user_id) or NotificationSettings(user_id)

    def save_settings(self, settings: NotificationSettings) -> None:
        self.t.notification_settings[settings.user_id] = settings

    def balances_to_check(self) -> list[BalanceFacts]:
        """As PostgreSQL's: a user whose account was never credited is included only with refusals."""
        facts: list[BalanceFacts] = []
        for user_id in sorted(self.t.users):
            top_ups = [e for e in self.t.ledger.values() if e.user_id == user_id and e.kind is LedgerKind.TOP_UP]
            top_up = max(top_ups, key=lambda e: e.entry_id, default=None)
            refused = sum(
                1
                for m in self.t.messages.values()
                if m.user_id == user_id
                and m.direction is Direction.INBOUND
                and m.status is MessageStatus.FAILED
                and m.failure_reason == INSUFFICIENT_CREDITS
                and (top_up is None or m.created_at > top_up.created_at)
            )
            credits = self.t.credits.get(user_id)
            low_at = self.settings(user_id).credits_low_at
            if (credits is not None and credits.available <= low_at) or refused > 0:
                available = 0 if credits is None else credits.available
                facts.append(
                    BalanceFacts(user_id, available, low_at, 0 if top_up is None else top_up.entry_id, refused)
                )
        return facts

    def send_failures(self, since: datetime) -> list[SendFailures]:
        by_channel: dict[tuple[str, str], list[Message]] = defaultdict(list)
        for m in self.t.messages.values():
            if m.direction is Direction.OUTBOUND and m.status is MessageStatus.FAILED and m.updated_at >= since:
                by_channel[(m.user_id, m.phone_number_id)].append(m)
        return [
            SendFailures(
                user_id,
                phone_number_id,
                dict(Counter(m.failure_code or "" for m in failed)),
                max(m.updated_at for m in failed),
            )
            for (user_id, phone_number_id), failed in sorted(by_channel.items())
        ]

    def waiting_for_human(self) -> list[WaitingConversation]:
        held: dict[int, list[Message]] = defaultdict(list)
        for m in self.t.messages.values():
            if m.status is MessageStatus.HELD:
                held[m.conversation_id].append(m)
        waiting: list[WaitingConversation] = []
        for conversation_id, messages in sorted(held.items()):
            first = min(messages, key=lambda m: m.sequence_no)
            conversation = self.t.conversations[conversation_id]
            waiting.append(
                WaitingConversation(
                    conversation.user_id,
                    conversation_id,
                    conversation.phone_number_id,
                    first.message_id,
                    len(messages),
                    first.created_at,
                )
            )
        return waiting

    def list(self, user_id: str, query: NotificationQuery) -> NotificationPage:
        found = sorted(
            (n for n in self.t.notifications.values() if n.user_id == user_id and _matches(n, query)), key=_position
        )
        if query.cursor is not None:
            after = (query.cursor.read, -query.cursor.notification_id)
            found = [n for n in found if _position(n) > after]
        items = found[: query.limit]
        last = items[-1] if len(found) > query.limit and items else None
        return NotificationPage(
            items=items, next_cursor=None if last is None else NotificationCursor(last.read, last.notification_id)
        )


def _position(notification: Notification) -> tuple[bool, int]:
    """Unread (False) before read, each newest first."""
    return notification.read, -notification.notification_id


def _matches(notification: Notification, query: NotificationQuery) -> bool:
    if query.kind is not None and notification.kind is not query.kind:
        return False
    if query.read is not None and notification.read is not query.read:
        return False
    if query.conversation_id is not None and notification.conversation_id != query.conversation_id:
        return False
    if query.since is not None and notification.created_at < query.since:
        return False
    return query.until is None or notification.created_at < query.until
