"""Lead extraction: when a conversation is read for its lead data, what the AI is asked, and what of its
answer is kept.

A conversation is due once it has been quiet for the extraction interval and has messages the last
extraction did not cover. The AI answers the fields of `FIELDS` as one JSON object; each field is
checked on its own here, and a field that fails its check is kept as missing, with the reason, so
one bad value never costs the rest of the lead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from attrs import evolve, field, frozen

from domain.errors import ValidationFailed

#: Text fields and their longest kept length (the seed's column sizes; a smart notification is one line).
TEXT_FIELDS: Mapping[str, int] = {"name": 100, "email": 255, "company": 255, "intent": 100, "smart_notification": 500}
#: Scores from 1 (low) to 3 (high).
SCORE_FIELDS = ("urgency", "budget", "fit", "engagement")
SCORE_RANGE = range(1, 4)
DEMO_FIELD = "demo_datetime"
#: Every field the AI is asked for, in the seed's order (`ExtractionData`).
FIELDS = ("name", "email", "company", "intent", *SCORE_FIELDS, DEMO_FIELD, "smart_notification")

#: What each field means, for the AI (the JSON schema's descriptions) and for the documentation.
DESCRIPTIONS: Mapping[str, str] = {
    "name": "The customer's name, as they gave it.",
    "email": "The customer's e-mail address, exactly as written.",
    "company": "The company the customer works for or buys for.",
    "intent": "What the customer wants, in a few words (e.g. 'book a demo', 'pricing for 20 seats').",
    "urgency": "How soon the customer needs it: 1 no rush, 2 within weeks, 3 now or within days.",
    "budget": "How well their budget matches: 1 none or far too small, 2 unclear or partial, 3 clear fit.",
    "fit": "How well the customer fits the business's offer: 1 poor, 2 possible, 3 strong.",
    "engagement": "How engaged the customer is: 1 one-word replies, 2 answers questions, 3 asks and drives.",
    "demo_datetime": (
        "The date and time of a demo, call or meeting the customer agreed to, as ISO 8601 with its UTC offset "
        "(e.g. 2026-12-08T15:00:00+01:00). Resolve words such as 'tomorrow at 3' against the time of the "
        "message that says them; use the customer's time zone when they give one."
    ),
    "smart_notification": (
        "One sentence for the sales team about what matters now in this conversation (a question to answer, "
        "a promise made, a buying signal), or null when nothing needs them."
    ),
}

BUILT_IN_INSTRUCTIONS = (
    "You read a conversation between a business's AI agent (and sometimes its staff) and a customer, and "
    "extract lead data for the business's sales team. Answer with the JSON object the schema describes. "
    "Use only what the conversation says: a field the conversation does not settle is null, never a guess. "
    "Each message is prefixed with its time (ISO 8601, UTC) and who wrote it."
)

#: The reason kept for a field the AI left out or answered null.
NOT_STATED = "not stated in the conversation"
#: A demo further than this from the conversation is a misreading (a wrong year), not a booking.
DEMO_HORIZON = timedelta(days=2 * 366)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")
#: C0 and C1 control characters but tab and new line: invisible in a list, harmful in a terminal or a log.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

#: After a failed extraction, wait this long before the next try; doubled each time, up to an hour.
FIRST_RETRY_AFTER = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=1)
#: Tries before a conversation's extraction is left until the customer writes again.
MAX_ATTEMPTS = 8
#: A claimed extraction not finished within this long (its worker died) is due again.
CLAIM_FOR = timedelta(minutes=10)


@frozen
class LeadActivity:
    """A conversation as extraction sees it: how far it goes, how far its last extraction went, and the
    state of an extraction under way or failed."""

    conversation_id: int
    user_id: str
    phone_number_id: str
    agent_id: str
    last_message_at: datetime
    last_sequence_no: int
    extracted_through: int = 0
    claimed_until: datetime | None = None
    attempts: int = 0
    last_failure: str | None = None

    @property
    def has_new_messages(self) -> bool:
        return self.last_sequence_no > self.extracted_through

    def is_due(self, now: datetime, interval: timedelta) -> bool:
        """Quiet for `interval`, with messages the last extraction did not cover (or give up on), and not
        taken by a worker (or its claim ran out)."""
        return (
            self.has_new_messages
            and self.last_message_at <= quiet_before(now, interval)
            and (self.claimed_until is None or self.claimed_until <= now)
            and self.attempts < MAX_ATTEMPTS
        )

    def claim(self, now: datetime) -> LeadActivity:
        return evolve(self, claimed_until=now + CLAIM_FOR)

    def extracted(self, through: int) -> LeadActivity:
        """Done up to message `through`; what the customer writes after it makes the conversation due again."""
        return evolve(
            self,
            extracted_through=max(self.extracted_through, through),
            claimed_until=None,
            attempts=0,
            last_failure=None,
        )

    def failed(self, reason: str, now: datetime, *, retryable: bool, through: int) -> LeadActivity:
        """After a failed reading of the messages up to `through`: tried again after a doubling wait; after
        MAX_ATTEMPTS tries, or at once when the AI refused the request itself, those messages are given up
        and the conversation waits for the customer to write again (the next reading covers everything)."""
        attempts = self.attempts + 1
        if not retryable or attempts >= MAX_ATTEMPTS:
            return evolve(
                self,
                extracted_through=max(self.extracted_through, through),
                claimed_until=None,
                attempts=0,
                last_failure=reason[:1000],
            )
        wait = min(FIRST_RETRY_AFTER * 2 ** (attempts - 1), LONGEST_WAIT)
        return evolve(self, attempts=attempts, claimed_until=now + wait, last_failure=reason[:1000])


def quiet_before(now: datetime, interval: timedelta) -> datetime:
    """A conversation whose last message is at or before this has been quiet long enough."""
    return now - interval


@frozen
class TranscriptLine:
    sequence_no: int
    at: datetime
    #: "customer", "ai" or "human" (a person from the business).
    sender: str
    text: str


_SPEAKERS = {"customer": "Customer", "ai": "Agent", "human": "Staff"}


def transcript_text(lines: Sequence[TranscriptLine]) -> str:
    """The conversation as the AI reads it: one line per message, with its time, so that "tomorrow at
    three" can be resolved against the day it was written."""
    return "\n".join(
        f"[{line.at.isoformat(timespec='minutes')}] {_SPEAKERS.get(line.sender, line.sender)}: {line.text}"
        for line in lines
        if line.text
    )


@frozen
class LeadFields:
    """The checked answer: every field of `FIELDS` either has a value or is in `missing` with the reason."""

    name: str | None = None
    email: str | None = None
    company: str | None = None
    intent: str | None = None
    urgency: int | None = None
    budget: int | None = None
    fit: int | None = None
    engagement: int | None = None
    demo_datetime: datetime | None = None
    smart_notification: str | None = None
    missing: Mapping[str, str] = field(factory=dict)

    @classmethod
    def from_answer(cls, answer: Mapping[str, object], written_at: datetime) -> LeadFields:
        """Check each field of the AI's answer; `written_at` is the time of the conversation's last message
        (a demo date far from it is a misreading)."""
        values: dict[str, object] = {}
        missing: dict[str, str] = {}
        for name in FIELDS:
            raw = answer.get(name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                missing[name] = NOT_STATED
                continue
            try:
                values[name] = _check(name, raw, written_at)
            except ValueError as invalid:
                missing[name] = str(invalid)
        return cls(**values, missing=missing)  # type: ignore[arg-type]

    def score(self, name: str) -> int | None:
        value = getattr(self, name)
        return value if isinstance(value, int) else None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in FIELDS}


def _check(name: str, raw: object, written_at: datetime) -> object:
    if name in SCORE_FIELDS:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw not in SCORE_RANGE:
            raise ValueError(f"{raw!r} is not a score from 1 to 3")
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"{type(raw).__name__} where text was expected")
    text = _CONTROL.sub("", raw).strip()
    if not text:
        raise ValueError(NOT_STATED)
    if name == DEMO_FIELD:
        return _demo_time(text, written_at)
    longest = TEXT_FIELDS[name]
    if len(text) > longest:
        raise ValueError(f"longer than {longest} characters")
    if name == "email" and not _EMAIL.match(text):
        raise ValueError(f"{text[:100]!r} is not an e-mail address")
    return text


def _demo_time(text: str, written_at: datetime) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{text[:60]!r} has no UTC offset: its time zone is unknown")
    if abs(when - written_at) > DEMO_HORIZON:
        raise ValueError(f"{text[:60]!r} is more than two years from the conversation")
    return when


@frozen
class Extraction:
    """One reading of a conversation, kept as history; the latest is the lead as the business sees it."""

    extraction_id: int | None
    user_id: str
    conversation_id: int
    phone_number_id: str
    #: The conversation's messages up to this sequence number were read.
    through_sequence_no: int
    fields: LeadFields
    created_at: datetime
    credits_charged: int = 0
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@frozen
class HotLeadThresholds:
    """A lead is hot when each score named here is at least its minimum (a score not named is not
    looked at; a named score the lead lacks keeps it from being hot). Set per business."""

    minimums: Mapping[str, int] = field(factory=lambda: {"urgency": 3, "budget": 2, "fit": 3})

    @classmethod
    def of(cls, minimums: Mapping[str, object]) -> HotLeadThresholds:
        checked: dict[str, int] = {}
        for name, minimum in minimums.items():
            if name not in SCORE_FIELDS:
                raise ValidationFailed(f"{name} is not a score ({', '.join(SCORE_FIELDS)})", field="hot_lead")
            if minimum is None:
                continue
            if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum not in SCORE_RANGE:
                raise ValidationFailed(f"hot_lead.{name} must be 1, 2, 3 or null", field=f"hot_lead.{name}")
            checked[name] = minimum
        if not checked:
            raise ValidationFailed("hot_lead must name at least one score", field="hot_lead")
        return cls(checked)

    def is_hot(self, lead: LeadFields) -> bool:
        return all((lead.score(name) or 0) >= minimum for name, minimum in self.minimums.items())


class LeadEvent:
    """What changed between two readings of a lead that the business wants to hear about."""

    SMART_NOTIFICATION = "smart_notification"
    DEMO_BOOKED = "demo_booked"
    DEMO_MOVED = "demo_moved"
    HOT_LEAD = "hot_lead"


def lead_events(previous: LeadFields | None, current: LeadFields, thresholds: HotLeadThresholds) -> tuple[str, ...]:
    """The events of `current` after `previous` (None: the first reading): a new or changed smart
    notification, a demo booked or moved, a lead that became hot. A field the new reading lacks is not
    news (the AI not seeing a demo again does not cancel it). Only the previous reading is compared: a
    demo seen, then missed by one reading, then seen again is told twice (each reading covers the whole
    conversation, so a field missed once is rare; keeping the lead's merged state would prevent it)."""
    events: list[str] = []
    before = previous or LeadFields()
    if current.smart_notification and current.smart_notification != before.smart_notification:
        events.append(LeadEvent.SMART_NOTIFICATION)
    if current.demo_datetime is not None:
        if before.demo_datetime is None:
            events.append(LeadEvent.DEMO_BOOKED)
        elif current.demo_datetime != before.demo_datetime:
            events.append(LeadEvent.DEMO_MOVED)
    if thresholds.is_hot(current) and not (previous is not None and thresholds.is_hot(previous)):
        events.append(LeadEvent.HOT_LEAD)
    return tuple(events)
