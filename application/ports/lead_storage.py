"""Storage ports of lead extraction, notifications and outgoing webhooks, reached through the unit of
work (`uow.extractions`, `uow.notifications`, `uow.webhooks`): one transaction per `with` block."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from attrs import frozen

from domain.channels import ChannelType
from domain.extraction import Extraction, LeadActivity, TranscriptLine
from domain.notifications import (
    BalanceFacts,
    NewNotification,
    Notification,
    NotificationKind,
    NotificationSettings,
    SendFailures,
    WaitingConversation,
)
from domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@frozen
class ExtractionQuery:
    """Filters of GET /users/{id}/extractions (the latest extraction of each conversation).

    Scores are minimums (a lead without the score does not match); `has_demo` True: a demo time is
    known, False: none is; `since`/`until` bound the extraction's time. Newest first; `cursor` is the
    last `extraction_id` of the previous page."""

    channel: ChannelType | None = None
    phone_number_id: str | None = None
    min_urgency: int | None = None
    min_budget: int | None = None
    min_fit: int | None = None
    min_engagement: int | None = None
    has_demo: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: int | None = None
    limit: int = 50


@frozen
class ExtractionPage:
    items: Sequence[Extraction]
    next_cursor: int | None


class ExtractionsRepository(Protocol):
    def claim_due(self, quiet_before: datetime, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        """Take up to `limit` conversations due for extraction (`LeadActivity.is_due`: last message at or
        before `quiet_before`, messages past the last extraction, no claim or one that ran out by `now`,
        fewer than MAX_ATTEMPTS failed tries) and mark them claimed until `claim_until`. Two callers at
        once never take the same conversation. Returns their ids, the longest quiet first."""

    def activity(self, conversation_id: int) -> LeadActivity | None:
        """The conversation's extraction state, locked until the unit of work ends."""

    def save_activity(self, activity: LeadActivity) -> None:
        """Save `extracted_through`, `claimed_until`, `attempts`, `last_failure`."""

    def transcript(self, conversation_id: int, through_sequence_no: int) -> tuple[TranscriptLine, ...]:
        """The conversation's texts up to `through_sequence_no`, in order: the customer's, the AI's replies
        and the business's people's, sent or not; deleted messages and messages without text left out."""

    def latest(self, conversation_id: int) -> Extraction | None: ...

    def add(self, extraction: Extraction) -> Extraction | None:
        """Store it and return it with its id; None when an extraction through the same message of the same
        conversation is stored already (a job run twice)."""

    def list_latest(self, user_id: str, query: ExtractionQuery) -> ExtractionPage:
        """The latest extraction of each of the user's conversations that matches, newest first."""

    def history(self, user_id: str, conversation_id: int, cursor: int | None, limit: int) -> ExtractionPage:
        """Every extraction of the user's conversation, newest first (`extraction_id` below `cursor`)."""


@frozen
class NotificationCursor:
    """Unread come first, then read; each newest first. A page resumes after this one."""

    read: bool
    notification_id: int


@frozen
class NotificationQuery:
    kind: NotificationKind | None = None
    #: None: both; True: only read; False: only unread.
    read: bool | None = None
    conversation_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: NotificationCursor | None = None
    limit: int = 50


@frozen
class NotificationPage:
    items: Sequence[Notification]
    next_cursor: NotificationCursor | None


class NotificationsRepository(Protocol):
    def add(self, new: NewNotification) -> Notification | None:
        """Store it; None when the user has a notification with the same `dedup_key` already."""

    def get(self, user_id: str, notification_id: int) -> Notification | None: ...

    def save_read(self, notification: Notification) -> None:
        """Save `read_at`."""

    def mark_all_read(self, user_id: str, now: datetime) -> int:
        """Mark every unread notification of the user read; returns how many."""

    def unread_count(self, user_id: str) -> int: ...

    def settings(self, user_id: str) -> NotificationSettings:
        """The user's settings; the defaults when never changed."""

    def save_settings(self, settings: NotificationSettings) -> None: ...

    # What the sweep reads to decide the account's notifications (domain.notifications):

    def balances_to_check(self) -> list[BalanceFacts]:
        """Users whose available credits are at or under their `credits_low_at`, or who had a message left
        unanswered for want of credits since their latest top-up."""

    def send_failures(self, since: datetime) -> list[SendFailures]:
        """Per channel, the outbound messages that failed at or after `since`, counted by error code."""

    def waiting_for_human(self) -> list[WaitingConversation]:
        """Conversations with held messages (the bot paused, nobody has answered yet)."""

    def list(self, user_id: str, query: NotificationQuery) -> NotificationPage:
        """Unread first, then read; each newest first."""


@frozen
class DeliveryQuery:
    status: DeliveryStatus | None = None
    notification_id: int | None = None
    cursor: int | None = None
    limit: int = 50


@frozen
class LoggedDelivery:
    delivery: WebhookDelivery
    attempts: Sequence[WebhookAttempt]


@frozen
class DeliveryPage:
    items: Sequence[LoggedDelivery]
    next_cursor: int | None


class WebhooksRepository(Protocol):
    def endpoint(self, user_id: str) -> WebhookEndpoint | None:
        """The user's webhook with its secret in clear (stored encrypted)."""

    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Create or replace the user's webhook."""

    def delete_endpoint(self, user_id: str) -> bool:
        """Remove it (deliveries still pending are given up by their next attempt); False when none."""

    def add_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Store it and return it with its id."""

    def claim_due(self, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        """Take up to `limit` pending deliveries whose next attempt is due by `now` and that no worker holds
        (or whose hold ran out), and hold them until `claim_until`. Two callers never take the same one."""

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        """The delivery, locked until the unit of work ends."""

    def save_attempt(self, delivery: WebhookDelivery, attempt: WebhookAttempt) -> None:
        """Save the delivery after `attempt` (status, attempts, next attempt, last outcome; its hold is
        released) and add the attempt to its log."""

    def list(self, user_id: str, query: DeliveryQuery) -> DeliveryPage:
        """The user's deliveries with their attempts, newest first (`delivery_id` below `cursor`)."""
