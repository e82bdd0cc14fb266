"""The state behind every in-memory repository of one process: plain dicts, one lock.

Entities are frozen, so a snapshot of the dicts (pointer copies) is a consistent copy that a
rollback can put back. One lock serialises every change, which is what PostgreSQL's row locks and
single statements give the real adapters for the changes the pipeline makes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from attrs import define, evolve, field

from domain.conversations import Conversation
from domain.credits import CreditMovement, Credits, LedgerEntry
from domain.extraction import Extraction, LeadActivity
from domain.messages import Direction, Message
from domain.notifications import Notification, NotificationSettings
from domain.relink import Archived
from domain.tenancy import Agent, Channel, User
from domain.turns import StatusChange, Turn
from domain.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

#: `updated_at` of an account that was never credited.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@define
class Tables:
    users: dict[str, User] = field(factory=dict)
    channels: dict[str, Channel] = field(factory=dict)
    agents: dict[str, Agent] = field(factory=dict)
    credits: dict[str, Credits] = field(factory=dict)
    ledger: dict[int, LedgerEntry] = field(factory=dict)
    idempotency: dict[tuple[str, str], int] = field(factory=dict)
    conversations: dict[int, Conversation] = field(factory=dict)
    messages: dict[int, Message] = field(factory=dict)
    platform_ids: dict[tuple[str, str], int] = field(factory=dict)
    turns: dict[int, Turn] = field(factory=dict)
    #: A person's replies by (conversation_id, Idempotency-Key): the ids of their parts.
    reply_keys: dict[tuple[int, str], tuple[int, ...]] = field(factory=dict)
    counters: dict[str, int] = field(factory=dict)
    archives: dict[int, Archived] = field(factory=dict)
    #: A conversation's extraction state as last saved, by conversation id: only its extraction fields
    #: count (`extracted_through`, `claimed_until`, `attempts`, `last_failure`); the rest is read from
    #: the conversation, as the columns of one row are in PostgreSQL.
    extraction_states: dict[int, LeadActivity] = field(factory=dict)
    extractions: dict[int, Extraction] = field(factory=dict)
    notifications: dict[int, Notification] = field(factory=dict)
    notification_settings: dict[str, NotificationSettings] = field(factory=dict)
    webhook_endpoints: dict[str, WebhookEndpoint] = field(factory=dict)
    webhook_deliveries: dict[int, WebhookDelivery] = field(factory=dict)
    #: Until when a worker holds a delivery (the entity does not carry it: holding is storage's business).
    webhook_claims: dict[int, datetime] = field(factory=dict)
    webhook_attempts: dict[int, tuple[WebhookAttempt, ...]] = field(factory=dict)

    def next_id(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    def copy(self) -> Tables:
        return Tables(**{attribute.name: dict(getattr(self, attribute.name)) for attribute in Tables.__attrs_attrs__})

    # --- applying what the domain decided (used by more than one repository) -------------------

    def move_credits(self, movement: CreditMovement, now: datetime) -> LedgerEntry | None:
        """Apply a credit movement (the domain refuses one that would go negative) and write its ledger line."""
        credits = self.credits.get(movement.user_id) or Credits.none(movement.user_id, NEVER)
        credits = credits.apply(movement, now)
        self.credits[movement.user_id] = credits
        if movement.ledger is None:
            return None
        entry = LedgerEntry(
            entry_id=self.next_id("ledger"),
            user_id=movement.user_id,
            kind=movement.ledger,
            amount=movement.balance,
            balance_after=credits.balance,
            reason=movement.reason,
            turn_id=movement.turn_id,
            created_at=now,
            extraction_id=movement.extraction_id,
        )
        self.ledger[entry.entry_id] = entry
        return entry

    def change_status(self, change: StatusChange, now: datetime, *, turn_id: int | None = None) -> None:
        """Move the inbound messages of `change` (in its conversation) that are still `change.before` (others
        are left alone)."""
        for message in self.of_direction(change.message_ids, Direction.INBOUND):
            if message.conversation_id == change.conversation_id and message.status is change.before:
                self.messages[message.message_id] = evolve(
                    message,
                    status=change.after,
                    failure_reason=change.reason,
                    failure_code=None,
                    turn_id=message.turn_id if turn_id is None else turn_id,
                    updated_at=now,
                )

    def of_direction(self, message_ids: Sequence[int], direction: Direction) -> list[Message]:
        found = (self.messages.get(message_id) for message_id in dict.fromkeys(message_ids))
        return [m for m in found if m is not None and m.direction is direction]


class InMemoryStore:
    """The shared state behind every in-memory repository and unit of work of one process."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.lock = threading.RLock()

    @contextmanager
    def atomic(self) -> Iterator[Tables]:
        """One change, whole or not at all: whatever it did is undone when it raises."""
        with self.lock:
            saved = self.tables.copy()
            try:
                yield self.tables
            except BaseException:
                self.tables = saved
                raise
