"""Channel types and what each one allows: the rules a reply has to follow to reach a customer."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta

from attrs import frozen


class ChannelType(enum.StrEnum):
    WHATSAPP = "whatsapp"
    INSTAGRAM = "instagram"
    WEBCHAT = "webchat"


class BotState(enum.StrEnum):
    """Whether the AI answers (a channel's, a conversation's): a person from the team takes over while paused."""

    ACTIVE = "active"
    PAUSED = "paused"


class TextUnit(enum.StrEnum):
    """What a channel counts when it limits the length of one message."""

    CHARACTERS = "characters"
    UTF8_BYTES = "utf8_bytes"

    def measure(self, text: str) -> int:
        return len(text) if self is TextUnit.CHARACTERS else len(text.encode("utf-8"))


#: Where a long reply is preferably cut, best first: between paragraphs, lines, words.
_BREAKS = ("\n\n", "\n", " ")


@frozen
class ChannelPolicy:
    """The platform's rules for one channel type.

    `service_window`: free-form replies may only be sent this long after the customer's last
    message (None: always). `text_limit` is counted in `text_unit`; a longer reply is split.
    """

    service_window: timedelta | None
    text_limit: int
    text_unit: TextUnit
    read_receipts: bool
    typing_indicator: bool
    #: How long after the customer's last message a person from the team may still write, with the
    #: platform's human-agent tag, once `service_window` is over (None: no longer than the service window).
    human_window: timedelta | None = None

    def window_open(self, last_customer_message_at: datetime | None, now: datetime) -> bool:
        """Whether a free-form reply may be sent now."""
        if self.service_window is None:
            return True
        return last_customer_message_at is not None and now - last_customer_message_at < self.service_window

    def human_window_open(self, last_customer_message_at: datetime | None, now: datetime) -> bool:
        """Whether a person's free-form reply may be sent now: within the service window, or after it
        within the human-agent window where the platform has one."""
        if self.window_open(last_customer_message_at, now):
            return True
        return (
            self.human_window is not None
            and last_customer_message_at is not None
            and now - last_customer_message_at < self.human_window
        )

    def needs_human_tag(self, last_customer_message_at: datetime | None, now: datetime) -> bool:
        """Whether a person's reply sent now goes out only with the human-agent tag (the service window is
        over, the human-agent window is not)."""
        return not self.window_open(last_customer_message_at, now) and self.human_window_open(
            last_customer_message_at, now
        )

    def split(self, text: str) -> tuple[str, ...]:
        """The reply as the messages to send, each within the limit, in order.

        Cuts prefer a paragraph, line or word break in the second half of what fits; with none
        there, the cut is hard (never inside a character, whatever the unit).
        """
        text = text.strip()
        pieces: list[str] = []
        while text and self.text_unit.measure(text) > self.text_limit:
            fits = _longest_prefix(text, self.text_limit, self.text_unit.measure)
            window = text[:fits]
            cut = next((at for at in (window.rfind(mark) for mark in _BREAKS) if at >= max(1, fits // 2)), fits)
            pieces.append(text[:cut].rstrip())
            text = text[cut:].lstrip()
        if text:
            pieces.append(text)
        return tuple(pieces)


def _longest_prefix(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """The number of leading characters of `text` whose measure is at most `limit` (at least 1)."""
    low, high = 1, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


#: WhatsApp: 24-hour customer-service window, 4,096 characters per text, read receipts that can carry
#: a typing indicator. Instagram: 24-hour window for automated replies, 1,000 bytes of UTF-8 per text,
#: a person from the team for 7 days with the HUMAN_AGENT tag. Web chat: our own widget, no window; its
#: "read receipt" is the widget's typing indicator (the only thing the widget shows of it).
CHANNEL_POLICIES: dict[ChannelType, ChannelPolicy] = {
    ChannelType.WHATSAPP: ChannelPolicy(
        service_window=timedelta(hours=24),
        text_limit=4096,
        text_unit=TextUnit.CHARACTERS,
        read_receipts=True,
        typing_indicator=True,
    ),
    ChannelType.INSTAGRAM: ChannelPolicy(
        service_window=timedelta(hours=24),
        text_limit=1000,
        text_unit=TextUnit.UTF8_BYTES,
        read_receipts=False,  # `mark_seen` is not documented for Instagram Login: no receipt
        typing_indicator=True,
        human_window=timedelta(days=7),  # Meta's HUMAN_AGENT tag: a person may answer for 7 days
    ),
    ChannelType.WEBCHAT: ChannelPolicy(
        service_window=None,
        text_limit=4096,
        text_unit=TextUnit.CHARACTERS,
        read_receipts=True,
        typing_indicator=True,
    ),
}


def policy_for(channel_type: ChannelType) -> ChannelPolicy:
    return CHANNEL_POLICIES[channel_type]
