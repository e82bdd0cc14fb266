"""IO_COUNTS: a process's Redis round trips and PostgreSQL statements, added up in one Redis hash.

The benchmark reads the hash before and after its measured window to report them per message; the
machine's PostgreSQL has no pg_stat_statements, so the service counts its own calls. The counting
clients (adapters/redis/client.py, adapters/postgres/pool.py) are only built when the setting is on:
with it off the hot path runs redis-py's and psycopg's own classes.
"""

from __future__ import annotations

import logging
import threading

import redis
from attrs import frozen

log = logging.getLogger(__name__)

#: The Redis hash every counting process adds its counts to.
COUNTS_KEY = "mcagent:io_counts"
REDIS_ROUND_TRIPS = "redis_round_trips"
PG_STATEMENTS = "pg_statements"

#: How often a counting process adds its counts to the hash: the figures lag by about this much.
FLUSH_EVERY_S = 1.0


@frozen
class IoTally:
    redis_round_trips: int = 0
    pg_statements: int = 0

    def __bool__(self) -> bool:
        return bool(self.redis_round_trips or self.pg_statements)

    def fields(self, role: str) -> dict[str, int]:
        """The hash fields this tally adds to: the totals, and the same per role (`web:pg_statements`)."""
        counts = {REDIS_ROUND_TRIPS: self.redis_round_trips, PG_STATEMENTS: self.pg_statements}
        return {**counts, **{f"{role}:{name}": value for name, value in counts.items()}}


class IoCounts:
    """Counts of one process, safe to add to from any thread; `take` hands over what was counted since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._redis_round_trips = 0
        self._pg_statements = 0

    def redis_round_trip(self) -> None:
        with self._lock:
            self._redis_round_trips += 1

    def pg_statements(self, count: int = 1) -> None:
        with self._lock:
            self._pg_statements += count

    def take(self) -> IoTally:
        """What was counted since the last `take`, and start again from zero."""
        with self._lock:
            tally = IoTally(self._redis_round_trips, self._pg_statements)
            self._redis_round_trips = self._pg_statements = 0
        return tally

    def give_back(self, tally: IoTally) -> None:
        """Count again what a `take` handed over but could not be stored: the next flush carries it."""
        with self._lock:
            self._redis_round_trips += tally.redis_round_trips
            self._pg_statements += tally.pg_statements


class IoCountsFlusher:
    """Adds a process's counts to `COUNTS_KEY` every `every_s` from a daemon thread, and on `stop`.

    `client` must not count its own round trips: the flushes would count themselves.
    """

    def __init__(self, client: redis.Redis, counts: IoCounts, role: str, *, every_s: float = FLUSH_EVERY_S) -> None:
        self._client = client
        self._counts = counts
        self._role = role
        self._every_s = every_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="io-counts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def flush(self) -> IoTally:
        """Add what was counted since the last flush to the hash, in one round trip; returns what was added."""
        with self._flushing:
            tally = self._counts.take()
            if not tally:
                return tally
            try:
                with self._client.pipeline(transaction=False) as pipeline:
                    for name, value in tally.fields(self._role).items():
                        pipeline.hincrby(COUNTS_KEY, name, value)
                    pipeline.execute()
            except redis.RedisError as error:
                self._counts.give_back(tally)
                log.warning("io_counts_not_flushed", extra={"error": str(error)})
                return IoTally()
            return tally

    def _run(self) -> None:
        while not self._stopped.wait(self._every_s):
            self.flush()
