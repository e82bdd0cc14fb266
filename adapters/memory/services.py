"""In-memory queue, locks, caches, clock, ids and channel sender. Each records what happened."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta

from attrs import define, field

from application.ports.services import DeliveryFailed
from domain.credits import Credits
from domain.tenancy import Channel, Route


class InMemoryJobQueue:
    """Jobs wait in a deque; whoever drives the queue (a test, the dev worker thread) pops them."""

    def __init__(self) -> None:
        self.jobs: deque[str] = deque()
        self.enqueued: list[str] = []
        self._ready = threading.Condition()

    def enqueue_scope(self, scope_key: str, *, correlation_id: str | None = None, force: bool = False) -> None:
        with self._ready:
            if scope_key in self.jobs and not force:
                return  # the waiting job will see this work too
            self.jobs.append(scope_key)
            self.enqueued.append(scope_key)
            self._ready.notify()

    def taken(self, scope_key: str) -> None:
        """Nothing to clear: a job stops counting as waiting when `take` pops it."""

    def take(self, timeout_s: float) -> str | None:
        with self._ready:
            if not self.jobs:
                self._ready.wait(timeout_s)
            return self.jobs.popleft() if self.jobs else None


class InMemoryBackgroundJobs:
    """Background jobs wait in a deque, like `InMemoryJobQueue`: `("extraction", id)` or `("webhook", id)`."""

    def __init__(self) -> None:
        self.jobs: deque[tuple[str, int]] = deque()
        self.enqueued: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def enqueue_extraction(self, conversation_id: int) -> None:
        self._add(("extraction", conversation_id))

    def enqueue_webhook(self, delivery_id: int) -> None:
        self._add(("webhook", delivery_id))

    def _add(self, job: tuple[str, int]) -> None:
        with self._lock:
            self.jobs.append(job)
            self.enqueued.append(job)

    def take(self) -> tuple[str, int] | None:
        with self._lock:
            return self.jobs.popleft() if self.jobs else None


@define
class _Handle:
    _locks: InMemoryLocks
    key: str
    token: int
    released: bool = False

    @property
    def lost(self) -> bool:
        return self._locks.holders.get(self.key) != self.token

    def release(self) -> None:
        self._locks.release(self.key, self.token)
        self.released = True


class InMemoryLocks:
    def __init__(self) -> None:
        self.holders: dict[str, int] = {}
        self.acquired: list[str] = []
        self._tokens = itertools.count(1)
        self._mutex = threading.Lock()

    def acquire(self, key: str) -> _Handle | None:
        with self._mutex:
            if key in self.holders:
                return None
            token = next(self._tokens)
            self.holders[key] = token
            self.acquired.append(key)
            return _Handle(self, key, token)

    def release(self, key: str, token: int) -> None:
        with self._mutex:
            if self.holders.get(key) == token:
                del self.holders[key]

    def is_held(self, key: str) -> bool:
        return key in self.holders

    def expire(self, key: str) -> None:
        """What a dead holder's lock does after its TTL: disappear."""
        with self._mutex:
            self.holders.pop(key, None)


class InMemoryRouteCache:
    def __init__(self) -> None:
        self.entries: dict[str, Route] = {}
        self.invalidated: list[str] = []

    def get(self, phone_number_id: str) -> Route | None:
        return self.entries.get(phone_number_id)

    def put(self, route: Route) -> None:
        self.entries[route.channel.phone_number_id] = route

    def invalidate(self, phone_number_id: str) -> None:
        self.entries.pop(phone_number_id, None)
        self.invalidated.append(phone_number_id)


class InMemoryBalanceCache:
    def __init__(self) -> None:
        self.entries: dict[str, Credits] = {}
        self.invalidated: list[str] = []

    def get(self, user_id: str) -> Credits | None:
        return self.entries.get(user_id)

    def put(self, credits: Credits) -> None:
        self.entries[credits.user_id] = credits

    def invalidate(self, user_id: str) -> None:
        self.entries.pop(user_id, None)
        self.invalidated.append(user_id)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@define
class FixedClock:
    """A clock tests move by hand; `sleep` moves it on at once and is recorded in `slept`."""

    current: datetime = field(factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    slept: list[float] = field(factory=list)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds=seconds)


class RandomIds:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(8)}"

    def new_secret(self) -> str:
        return f"mca_{secrets.token_urlsafe(32)}"


class SequentialIds:
    """Predictable ids for tests."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._counter)}"

    def new_secret(self) -> str:
        return f"mca_secret_{next(self._counter)}"


@define
class SentText:
    phone_number_id: str
    recipient_id: str
    text: str
    platform_message_id: str
    human_agent: bool = False  # sent with the platform's human-agent tag


class RecordingSender:
    """Records what would have been sent; can be told to fail the next sends, or to be down (`available`)."""

    def __init__(self) -> None:
        self.available = True
        self.sent: list[SentText] = []
        self.read: list[str] = []
        #: the messages whose read receipt also showed the typing indicator
        self.typing: list[str] = []
        #: what the next read receipts raise instead, one each, in order
        self.read_failures: deque[DeliveryFailed] = deque()
        self.failures: deque[DeliveryFailed] = deque()
        self._ids = itertools.count(1)
        self._mutex = threading.Lock()

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        with self._mutex:
            if not self.available:  # as a real sender whose circuit is open
                raise DeliveryFailed("not sent: the channel is being waited out", retry_safe=True)
            if self.failures:
                raise self.failures.popleft()
            platform_message_id = f"wamid.out{next(self._ids)}"
            self.sent.append(SentText(channel.phone_number_id, recipient_id, text, platform_message_id, human_agent))
            return platform_message_id

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        if self.read_failures:
            raise self.read_failures.popleft()
        self.read.append(platform_message_id)
        if typing:
            self.typing.append(platform_message_id)
