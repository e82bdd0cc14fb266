"""Circuit breakers in front of the upstreams (OpenAI, the Graph API, Redis as a cache).

`circuitbreaker` keeps the state; it holds no lock while a call runs, which matters with a hundred
calls in flight in one worker process (pybreaker serialises every call of a breaker behind one lock).
A breaker counts only the failures that say the upstream is down or throttling everybody — a
request refused for its own reasons proves the upstream answers and closes the breaker. After
`failures` of those in a row it opens for `reset_after_s`: calls fail at once with `CircuitOpen`
and `available` is False; then calls go through again, and the first failure opens it anew.

A breaker lives in one process. Its openings are written to a `CircuitBoard` (Redis in production)
so that any process — the web's readiness answer — can tell which upstream is being waited out.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Protocol, TypeVar

import circuitbreaker
import redis
import structlog

log = structlog.get_logger()

T = TypeVar("T")

OPEN = "open"


class CircuitOpen(Exception):
    """The upstream is being waited out: nothing was sent to it."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(f"the {name} circuit is open after repeated failures; next try in {retry_in_s:.0f} s")
        self.name = name
        self.retry_in_s = retry_in_s


class CircuitBoard(Protocol):
    def opened(self, name: str, for_s: float) -> None:
        """This process's breaker `name` opened for `for_s` seconds."""

    def closed(self, name: str) -> None: ...

    def open_circuits(self) -> dict[str, int]:
        """The breakers open somewhere, with the number of processes that report them open."""


class Circuit:
    def __init__(
        self,
        name: str,
        *,
        failures: int,
        reset_after_s: float,
        is_outage: Callable[[BaseException], bool],
        board: CircuitBoard | None = None,
    ) -> None:
        self.name = name
        self._board = board
        self._reset_after_s = reset_after_s
        self._breaker = circuitbreaker.CircuitBreaker(
            failure_threshold=failures,
            recovery_timeout=reset_after_s,
            expected_exception=lambda _type, error: is_outage(error),
            name=name,
        )

    @property
    def available(self) -> bool:
        return not self._breaker.opened

    @property
    def state(self) -> str:
        return str(self._breaker.state)

    def call(self, function: Callable[[], T]) -> T:
        """`function()` through the breaker; CircuitOpen, without calling it, while the breaker is open."""
        if self._breaker.opened:
            raise CircuitOpen(self.name, max(float(self._breaker.open_remaining), 0.0))
        before = self._breaker.state
        try:
            with self._breaker:
                return function()
        finally:
            self._report(before, self._breaker.state)

    def _report(self, before: str, after: str) -> None:
        if after == before:
            return
        if after == OPEN:
            log.warning("circuit_opened", circuit=self.name, for_s=self._reset_after_s)
            if self._board is not None:
                self._board.opened(self.name, self._reset_after_s)
        elif after == "closed":
            log.info("circuit_closed", circuit=self.name)
            if self._board is not None:
                self._board.closed(self.name)


class InMemoryCircuitBoard:
    """For one process (the embedded dev mode, tests): what its own breakers reported."""

    def __init__(self) -> None:
        self._open: set[str] = set()

    def opened(self, name: str, for_s: float) -> None:
        self._open.add(name)

    def closed(self, name: str) -> None:
        self._open.discard(name)

    def open_circuits(self) -> dict[str, int]:
        return dict.fromkeys(sorted(self._open), 1)


class RedisCircuitBoard:
    """One key per process and open breaker, expiring when the breaker lets calls through again, so that
    a process that dies with a breaker open does not leave it reported open. Redis being down is never
    the caller's problem: the board is a report, not the breaker."""

    _PREFIX = "mcagent:circuit:"

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def opened(self, name: str, for_s: float) -> None:
        self._quietly(lambda: self._client.set(self._key(name), OPEN, px=max(int(for_s * 1000), 1)))

    def closed(self, name: str) -> None:
        self._quietly(lambda: self._client.delete(self._key(name)))

    def open_circuits(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            for key in self._client.scan_iter(f"{self._PREFIX}*", count=500):
                name = (key.decode() if isinstance(key, bytes) else str(key)).removeprefix(self._PREFIX)
                counts[name.split(":", 1)[0]] = counts.get(name.split(":", 1)[0], 0) + 1
        except redis.RedisError as error:
            log.warning("circuit_board_unavailable", error=str(error))
        return dict(sorted(counts.items()))

    def _key(self, name: str) -> str:
        return f"{self._PREFIX}{name}:{socket.gethostname()}:{os.getpid()}"

    def _quietly(self, command: Callable[[], object]) -> None:
        try:
            command()
        except redis.RedisError as error:
            log.warning("circuit_board_unavailable", error=str(error))
