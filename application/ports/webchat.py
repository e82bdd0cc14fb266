"""Ports of the web chat widget: visitor tokens, live signals to open widgets, rate limits."""

from __future__ import annotations

import enum
from typing import Protocol

from domain.webchat import VisitorSession


class VisitorTokens(Protocol):
    def issue(self, session: VisitorSession) -> str:
        """The token that proves `session` to us: opaque to the browser, not guessable, not forgeable."""

    def read(self, token: str) -> VisitorSession | None:
        """The session a token of ours holds (expired or not: the domain decides); None for anything else."""


class Signal(enum.StrEnum):
    MESSAGE = "message"  # something new to show: read the timeline again
    TYPING = "typing"  # the agent is writing a reply


class Watch(Protocol):
    def wait(self, timeout_s: float) -> frozenset[Signal]:
        """The signals that arrived since the watch began or the last wait, waiting up to `timeout_s` for one.

        May return empty before the time is up when signals cannot be trusted to arrive (the signal bus is
        away): the caller then reads the timeline again, as if signalled."""

    def close(self) -> None: ...


class VisitorSignals(Protocol):
    """Wake-ups for open widgets. A signal carries nothing to show: the timeline in the database is the truth,
    a signal only says "read it again now". Losing one delays a reply, never loses it."""

    def notify(self, widget_id: str, visitor_id: str, signal: Signal) -> None:
        """Best effort: never raises."""

    def watch(self, widget_id: str, visitor_id: str) -> Watch:
        """Start collecting one visitor's signals (before reading the timeline, so none slips between)."""


class RateLimits(Protocol):
    def hit(self, key: str, per_minute: int) -> float | None:
        """Count one use of `key`; None while within `per_minute`, else the seconds until one is allowed.
        A limiter that cannot count (its store is away) allows."""
