"""Notifications: what the business is told, and when the same thing is not told twice.

Each notification is decided here from facts (a new reading of a lead, a balance, failed sends, held
messages) and carries a `dedup_key`: storage keeps one notification per key and user, so a fact seen
by every sweep is announced once — until it changes (a new top-up, another day of failures, another
message waiting).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from attrs import evolve, field, frozen

from domain.errors import ValidationFailed
from domain.extraction import Extraction, HotLeadThresholds, LeadEvent


class NotificationKind(enum.StrEnum):
    SMART_NOTIFICATION = LeadEvent.SMART_NOTIFICATION
    DEMO_BOOKED = LeadEvent.DEMO_BOOKED
    DEMO_MOVED = LeadEvent.DEMO_MOVED
    HOT_LEAD = LeadEvent.HOT_LEAD
    CREDITS_LOW = "credits_low"
    CREDITS_EXHAUSTED = "credits_exhausted"
    CHANNEL_FAILING = "channel_failing"
    WAITING_FOR_HUMAN = "waiting_for_human"


#: Graph error codes that mean a channel cannot send until the business acts.
TOKEN_EXPIRED = "190"
OUTSIDE_WINDOW = "131047"
#: This many failed sends on one channel within FAILURE_WINDOW is a channel failing, whatever the codes.
REPEATED_FAILURES = 3
FAILURE_WINDOW = timedelta(minutes=15)
#: The default balance at or under which "credits running low" is sent.
DEFAULT_CREDITS_LOW_AT = 50
CREDITS_LOW_MAX = 10_000_000


@frozen
class NotificationSettings:
    """A business's choices: when a lead is hot, and when its credits are low."""

    user_id: str
    hot_lead: HotLeadThresholds = field(factory=HotLeadThresholds)
    credits_low_at: int = DEFAULT_CREDITS_LOW_AT

    def change(
        self, *, hot_lead: Mapping[str, object] | None = None, credits_low_at: object = None
    ) -> NotificationSettings:
        changed = self
        if hot_lead is not None:
            changed = evolve(changed, hot_lead=HotLeadThresholds.of(hot_lead))
        if credits_low_at is not None:
            if (
                isinstance(credits_low_at, bool)
                or not isinstance(credits_low_at, int)
                or not (0 <= credits_low_at <= CREDITS_LOW_MAX)
            ):
                raise ValidationFailed(
                    f"credits_low_at must be a whole number from 0 to {CREDITS_LOW_MAX}", field="credits_low_at"
                )
            changed = evolve(changed, credits_low_at=credits_low_at)
        return changed


@frozen
class NewNotification:
    """A notification the domain decided on, not stored yet."""

    user_id: str
    kind: NotificationKind
    title: str
    dedup_key: str
    created_at: datetime
    conversation_id: int | None = None
    phone_number_id: str | None = None
    #: Details for a program (a webhook receiver): ids, scores, times as ISO text.
    data: Mapping[str, object] = field(factory=dict)


@frozen
class Notification:
    notification_id: int
    user_id: str
    kind: NotificationKind
    title: str
    dedup_key: str
    created_at: datetime
    conversation_id: int | None
    phone_number_id: str | None
    data: Mapping[str, object]
    read_at: datetime | None = None

    @classmethod
    def stored(cls, notification_id: int, new: NewNotification) -> Notification:
        return cls(
            notification_id,
            new.user_id,
            new.kind,
            new.title,
            new.dedup_key,
            new.created_at,
            new.conversation_id,
            new.phone_number_id,
            new.data,
        )

    @property
    def read(self) -> bool:
        return self.read_at is not None

    def mark(self, *, read: bool, now: datetime) -> Notification:
        """Read (keeping the first time it was read) or unread again."""
        if read:
            return self if self.read_at is not None else evolve(self, read_at=now)
        return evolve(self, read_at=None)

    def as_event(self) -> dict[str, object]:
        """The notification as a webhook receiver gets it."""
        return {
            "notification_id": self.notification_id,
            "kind": str(self.kind),
            "title": self.title,
            "created_at": self.created_at.isoformat(),
            "conversation_id": self.conversation_id,
            "phone_number_id": self.phone_number_id,
            "data": dict(self.data),
        }


# --- from a new reading of a lead ----------------------------------------------------------------


def from_extraction(
    previous: Extraction | None, current: Extraction, settings: NotificationSettings, events: Sequence[str]
) -> tuple[NewNotification, ...]:
    """One notification per lead event of `current` (`domain.extraction.lead_events`)."""
    lead = current.fields
    who = lead.name or lead.email or f"conversation {current.conversation_id}"
    about: dict[str, object] = {
        "extraction_id": current.extraction_id,
        "name": lead.name,
        "email": lead.email,
        "company": lead.company,
        "urgency": lead.urgency,
        "budget": lead.budget,
        "fit": lead.fit,
        "engagement": lead.engagement,
    }
    made: list[NewNotification] = []
    for event in events:
        kind = NotificationKind(event)
        data = dict(about)
        if kind is NotificationKind.SMART_NOTIFICATION:
            title = lead.smart_notification or ""
            data["smart_notification"] = lead.smart_notification
        elif kind in (NotificationKind.DEMO_BOOKED, NotificationKind.DEMO_MOVED):
            assert lead.demo_datetime is not None
            when = lead.demo_datetime.isoformat()
            data["demo_datetime"] = when
            if kind is NotificationKind.DEMO_MOVED and previous is not None and previous.fields.demo_datetime:
                data["previous_demo_datetime"] = previous.fields.demo_datetime.isoformat()
                title = f"{who} moved the demo to {when}"
            else:
                title = f"{who} booked a demo for {when}"
        else:
            title = f"Hot lead: {who}"
            data["thresholds"] = dict(settings.hot_lead.minimums)
        made.append(
            NewNotification(
                current.user_id,
                kind,
                title,
                f"{kind}:{current.conversation_id}:{current.through_sequence_no}",
                current.created_at,
                current.conversation_id,
                current.phone_number_id,
                data,
            )
        )
    return tuple(made)


# --- from the state of an account, found by the sweep ------------------------------------------


@frozen
class BalanceFacts:
    """A business's credits as the sweep reads them. `top_up_id` names the latest top-up (0: never),
    so "low" and "exhausted" are told once per top-up; `refused_since_top_up` counts messages left
    unanswered for want of credits since then."""

    user_id: str
    available: int
    credits_low_at: int
    top_up_id: int
    refused_since_top_up: int


def about_balance(facts: BalanceFacts, now: datetime) -> tuple[NewNotification, ...]:
    """Exhausted once a message went unanswered for want of credits; low once the balance is at or under
    the business's threshold (and not exhausted, which says more)."""
    cycle = f"{facts.user_id}:{facts.top_up_id}"
    data = {"available": facts.available, "credits_low_at": facts.credits_low_at}
    if facts.refused_since_top_up > 0:
        return (
            NewNotification(
                facts.user_id,
                NotificationKind.CREDITS_EXHAUSTED,
                f"Credits exhausted: {facts.refused_since_top_up} message(s) left unanswered",
                f"credits_exhausted:{cycle}",
                now,
                data={**data, "unanswered": facts.refused_since_top_up},
            ),
        )
    if facts.available <= facts.credits_low_at:
        return (
            NewNotification(
                facts.user_id,
                NotificationKind.CREDITS_LOW,
                f"Credits running low: {facts.available} left",
                f"credits_low:{cycle}",
                now,
                data=data,
            ),
        )
    return ()


@frozen
class SendFailures:
    """A channel's failed sends within FAILURE_WINDOW, by the platform's error code ("" for none)."""

    user_id: str
    phone_number_id: str
    by_code: Mapping[str, int]
    last_failure_at: datetime


def about_channel(failures: SendFailures) -> tuple[NewNotification, ...]:
    """A channel is failing when its token expired (190), when it may not write first outside the window
    (131047), or after REPEATED_FAILURES failed sends in the window. Told once a day per reason."""
    day = failures.last_failure_at.date().isoformat()
    total = sum(failures.by_code.values())
    reasons: list[tuple[str, str]] = []
    if failures.by_code.get(TOKEN_EXPIRED):
        reasons.append(("token_expired", "its access token expired or was revoked (Graph error 190)"))
    if failures.by_code.get(OUTSIDE_WINDOW):
        reasons.append(("outside_window", "replies went out after the 24-hour window (Graph error 131047)"))
    if not reasons and total >= REPEATED_FAILURES:
        reasons.append(("repeated_failures", f"{total} sends failed in the last {_minutes(FAILURE_WINDOW)} minutes"))
    return tuple(
        NewNotification(
            failures.user_id,
            NotificationKind.CHANNEL_FAILING,
            f"Channel {failures.phone_number_id} is failing: {why}",
            f"channel_failing:{failures.phone_number_id}:{reason}:{day}",
            failures.last_failure_at,
            phone_number_id=failures.phone_number_id,
            data={"reason": reason, "failures": dict(failures.by_code)},
        )
        for reason, why in reasons
    )


@frozen
class WaitingConversation:
    """A conversation whose bot is paused, with customer messages nobody has answered (held)."""

    user_id: str
    conversation_id: int
    phone_number_id: str
    first_held_message_id: int
    held: int
    waiting_since: datetime


def about_waiting(waiting: WaitingConversation) -> NewNotification:
    """Told once per wait: the wait is named by its first unanswered message."""
    return NewNotification(
        waiting.user_id,
        NotificationKind.WAITING_FOR_HUMAN,
        f"A customer is waiting for a person: {waiting.held} unanswered message(s)",
        f"waiting_for_human:{waiting.conversation_id}:{waiting.first_held_message_id}",
        waiting.waiting_since,
        waiting.conversation_id,
        waiting.phone_number_id,
        {"held": waiting.held, "waiting_since": waiting.waiting_since.isoformat()},
    )


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
