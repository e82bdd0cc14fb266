"""IO_COUNTS: a process's counts of Redis round trips and PostgreSQL statements, and their flush into Redis
(adapters/io_counts.py). The counting clients themselves run against the real servers in
tests/integration/test_io_counts.py."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.connection import SSLConnection, UnixDomainSocketConnection

from adapters.io_counts import COUNTS_KEY, IoCounts, IoCountsFlusher, IoTally
from adapters.redis.client import connection_options, redis_client
from entrypoints.io_counting import io_counts_for
from entrypoints.settings import Settings
from tests.support.secrets import TEST_TOKEN_KEY


class FakeRedis:
    """Records HINCRBYs sent in a pipeline; `down` makes the next `execute` fail as a lost Redis would."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, int]] = {}
        self.round_trips = 0
        self.down = False

    @contextmanager
    def pipeline(self, transaction: bool = True) -> Iterator[FakeRedis.Pipeline]:
        yield FakeRedis.Pipeline(self)

    class Pipeline:
        def __init__(self, server: FakeRedis) -> None:
            self._server = server
            self._queued: list[tuple[str, str, int]] = []

        def hincrby(self, key: str, field: str, amount: int) -> None:
            self._queued.append((key, field, amount))

        def execute(self) -> None:
            self._server.round_trips += 1
            if self._server.down:
                raise redis.ConnectionError("Connection refused")
            for key, field, amount in self._queued:
                fields = self._server.hashes.setdefault(key, {})
                fields[field] = fields.get(field, 0) + amount


def _flusher(server: FakeRedis, counts: IoCounts, role: str = "worker") -> IoCountsFlusher:
    return IoCountsFlusher(server, counts, role)  # type: ignore[arg-type]


@contextmanager
def _switching_threads_often() -> Iterator[None]:
    # A count added between `take` reading the counts and setting them to zero would be lost; switching
    # threads every microsecond makes that near certain when the two are not under one lock.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_what_is_taken_is_counted_once_and_the_next_take_starts_from_zero() -> None:
    counts = IoCounts()
    counts.redis_round_trip()
    counts.pg_statements(3)
    assert counts.take() == IoTally(redis_round_trips=1, pg_statements=3)
    assert counts.take() == IoTally()
    counts.redis_round_trip()
    assert counts.take() == IoTally(redis_round_trips=1, pg_statements=0)


def test_counts_taken_while_other_threads_count_are_never_lost_nor_counted_twice() -> None:
    counts = IoCounts()
    taken: list[IoTally] = []
    done = threading.Event()

    def count() -> None:
        for _ in range(20_000):
            counts.redis_round_trip()
            counts.pg_statements(2)

    def take_until_done() -> None:
        while not done.is_set():
            taken.append(counts.take())

    with _switching_threads_often():
        taker = threading.Thread(target=take_until_done)
        taker.start()
        threads = [threading.Thread(target=count) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        taker.join()
    taken.append(counts.take())

    assert sum(t.redis_round_trips for t in taken) == 80_000
    assert sum(t.pg_statements for t in taken) == 160_000


def test_a_flush_adds_the_counts_since_the_last_one_to_the_totals_and_to_the_processes_role() -> None:
    server, counts = FakeRedis(), IoCounts()
    for _ in range(4):
        counts.redis_round_trip()
    counts.pg_statements(3)

    assert _flusher(server, counts, role="web").flush() == IoTally(redis_round_trips=4, pg_statements=3)

    assert server.hashes[COUNTS_KEY] == {
        "redis_round_trips": 4,
        "pg_statements": 3,
        "web:redis_round_trips": 4,
        "web:pg_statements": 3,
    }
    assert server.round_trips == 1


def test_processes_flushing_into_one_hash_add_up_and_each_role_keeps_its_own_share() -> None:
    server, web, worker = FakeRedis(), IoCounts(), IoCounts()
    web.redis_round_trip()
    worker.pg_statements(5)
    worker.redis_round_trip()

    _flusher(server, web, role="web").flush()
    _flusher(server, worker, role="worker").flush()

    assert server.hashes[COUNTS_KEY] == {
        "redis_round_trips": 2,
        "pg_statements": 5,
        "web:redis_round_trips": 1,
        "web:pg_statements": 0,
        "worker:redis_round_trips": 1,
        "worker:pg_statements": 5,
    }


def test_a_flush_with_nothing_counted_sends_nothing() -> None:
    server = FakeRedis()
    assert _flusher(server, IoCounts()).flush() == IoTally()
    assert server.round_trips == 0
    assert COUNTS_KEY not in server.hashes


def test_counts_a_failed_flush_could_not_store_are_added_by_the_next_one() -> None:
    server, counts = FakeRedis(), IoCounts()
    flusher = _flusher(server, counts)
    counts.pg_statements(2)
    server.down = True

    assert flusher.flush() == IoTally()

    server.down = False
    counts.pg_statements(1)
    assert flusher.flush() == IoTally(pg_statements=3)
    assert server.hashes[COUNTS_KEY]["pg_statements"] == 3


def test_stopping_the_flusher_adds_what_was_counted_since_its_last_flush() -> None:
    server, counts = FakeRedis(), IoCounts()
    flusher = _flusher(server, counts)
    flusher.start()
    counts.redis_round_trip()
    flusher.stop()
    assert server.hashes[COUNTS_KEY]["redis_round_trips"] == 1


def test_without_io_counts_the_clients_use_the_libraries_own_classes() -> None:
    # IO_COUNTS off: nothing of ours runs on a command's or a statement's way.
    assert connection_options("redis://127.0.0.1:6379/0", None) == {}
    assert redis_client("redis://127.0.0.1:6379/0", socket_timeout_s=1).connection_pool.connection_class is (
        redis.Connection
    )


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", redis.Connection),
        ("rediss://redis.example:6380/0", SSLConnection),
        ("unix:///run/redis.sock?db=0", UnixDomainSocketConnection),
    ],
)
def test_a_counting_client_keeps_the_kind_of_connection_its_url_asks_for(url: str, kind: type[Any]) -> None:
    connection_class = redis_client(url, socket_timeout_s=1, io_counts=IoCounts()).connection_pool.connection_class
    assert issubclass(connection_class, kind)
    assert connection_class is not kind


def _settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": "postgresql://db/mcagent",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "OPENAI_API_KEY": "sk-test",
            "WEBHOOK_SECRET": "s",
            "WEBHOOK_VERIFY_TOKEN": "v",
            "ADMIN_API_KEY": "a",
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
            **env,
        }
    )


def test_io_counts_are_off_unless_asked_for() -> None:
    assert _settings().io_counts is False
    assert io_counts_for(_settings(), "web") is None
    assert _settings(IO_COUNTS="true").io_counts is True
