"""IO_COUNTS against the real Redis and PostgreSQL: the service's clients count exactly the round trips
and statements they send, and the flush adds them to the hash the benchmark reads."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from rq import Queue

from adapters.io_counts import COUNTS_KEY, IoCounts, IoCountsFlusher, IoTally
from adapters.postgres.pool import open_pool
from adapters.redis.client import redis_client
from adapters.rq.queue import RqJobQueue
from entrypoints.container import build_container
from entrypoints.settings import Settings
from entrypoints.worker.rq_worker import run_rq_worker
from tests.support.jobs_for_tests import RECORD
from tests.support.secrets import TEST_TOKEN_KEY

QUEUE = "test-io-counts"


@pytest.fixture
def counts() -> IoCounts:
    return IoCounts()


@pytest.fixture
def counting_client(redis_url: str, counts: IoCounts) -> Iterator[redis.Redis]:
    client = redis_client(redis_url, socket_timeout_s=2, io_counts=counts)
    client.ping()  # connecting sends set-up commands of its own: round trips too, but not this test's
    counts.take()
    yield client
    client.close()


@pytest.fixture
def counting_pool(database_url: str, counts: IoCounts) -> Iterator[ConnectionPool]:
    pool = open_pool(database_url, size=1, timeout_s=10, io_counts=counts)
    pool.wait()
    yield pool
    pool.close()


def _stored(client: redis.Redis) -> dict[str, int]:
    return {field.decode(): int(value) for field, value in client.hgetall(COUNTS_KEY).items()}


def test_three_commands_and_a_pipeline_of_five_are_four_round_trips(
    counting_client: redis.Redis, counts: IoCounts
) -> None:
    counting_client.set("a", 1)
    counting_client.incr("a")
    counting_client.get("a")
    with counting_client.pipeline() as pipeline:  # MULTI … EXEC: one write, five commands
        for n in range(5):
            pipeline.rpush("list", n)
        pipeline.execute()

    assert counts.take() == IoTally(redis_round_trips=4)
    assert counting_client.llen("list") == 5


def test_rq_counts_the_round_trips_of_its_own_connection(redis_url: str, client: redis.Redis) -> None:
    counts = IoCounts()
    run_rq_worker(redis_url, QUEUE, on_start=None, burst=True, io_counts=counts)
    # Registering, looking for a job and leaving are round trips of the worker's connection.
    assert counts.take().redis_round_trips > 5


def test_making_a_scope_due_is_one_round_trip_and_one_more_only_to_queue_a_drainer(
    counting_client: redis.Redis, counts: IoCounts
) -> None:
    queue = RqJobQueue(counting_client, QUEUE, RECORD, job_timeout_s=30)
    queue.enqueue_scope("conversation:0")  # RQ's first enqueue on a client also asks for the server's version
    counts.take()
    queue.enqueue_scope("conversation:1")  # a drainer waits already: the mark and the entry, one script
    assert counts.take() == IoTally(redis_round_trips=1)
    queue.enqueue_scope("conversation:1")  # the scope is due already: nothing more
    assert counts.take() == IoTally(redis_round_trips=1)
    Queue(QUEUE, connection=counting_client).empty()  # a worker took the drainer
    counts.take()
    queue.enqueue_scope("conversation:2")  # no drainer waits: the script, then the drainer on one pipeline
    assert counts.take() == IoTally(redis_round_trips=2)


def test_a_new_pooled_connection_counts_its_time_zone_statement(database_url: str, counts: IoCounts) -> None:
    pool = open_pool(database_url, size=1, timeout_s=10, io_counts=counts)
    try:
        pool.wait()
        assert counts.take() == IoTally(pg_statements=1)  # `SET TIME ZONE 'UTC'`, once per connection
    finally:
        pool.close()


def test_two_statements_in_a_transaction_and_one_in_autocommit_are_three_statements(
    counting_pool: ConnectionPool, counts: IoCounts
) -> None:
    counts.take()
    with counting_pool.connection() as conn:  # BEGIN … COMMIT around them: not counted
        conn.execute("SELECT 1")
        conn.cursor(row_factory=dict_row).execute("SELECT %s AS n", (2,))
    with counting_pool.connection() as conn:
        conn.autocommit = True
        conn.cursor().execute("SELECT 3")
        conn.autocommit = False

    assert counts.take() == IoTally(pg_statements=3)


def test_executemany_counts_each_set_of_parameters(counting_pool: ConnectionPool, counts: IoCounts) -> None:
    counts.take()
    with counting_pool.connection() as conn:
        conn.execute("CREATE TEMPORARY TABLE io_counts_rows (n int)")
        conn.cursor().executemany("INSERT INTO io_counts_rows VALUES (%s)", ((n,) for n in range(4)))
        assert conn.execute("SELECT count(*) FROM io_counts_rows").fetchone() == (4,)

    assert counts.take() == IoTally(pg_statements=6)


def test_counts_reach_the_hash_exactly_and_flushing_does_not_count_itself(
    counting_client: redis.Redis, counting_pool: ConnectionPool, client: redis.Redis, counts: IoCounts
) -> None:
    counts.take()
    flusher = IoCountsFlusher(client, counts, "worker")
    counting_client.set("a", 1)
    counting_client.get("a")
    counting_client.delete("a")
    with counting_client.pipeline() as pipeline:
        for n in range(5):
            pipeline.rpush("list", n)
        pipeline.execute()
    with counting_pool.connection() as conn:
        conn.execute("SELECT 1")
        conn.execute("SELECT 2")
    with counting_pool.connection() as conn:
        conn.autocommit = True
        conn.execute("SELECT 3")
        conn.autocommit = False

    flusher.flush()
    flusher.flush()

    assert _stored(client) == {
        "redis_round_trips": 4,
        "pg_statements": 3,
        "worker:redis_round_trips": 4,
        "worker:pg_statements": 3,
    }
    assert counts.take() == IoTally()


def test_the_flusher_adds_the_counts_every_interval_without_being_asked(client: redis.Redis) -> None:
    counts = IoCounts()
    flusher = IoCountsFlusher(client, counts, "web", every_s=0.05)
    flusher.start()
    try:
        counts.redis_round_trip()
        counts.pg_statements(2)
        deadline = time.monotonic() + 3
        while _stored(client).get("pg_statements") != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _stored(client) == {
            "redis_round_trips": 1,
            "pg_statements": 2,
            "web:redis_round_trips": 1,
            "web:pg_statements": 2,
        }
    finally:
        flusher.stop()


def test_the_services_container_counts_on_its_redis_client_its_pool_and_its_rate_limits(
    database_url: str, redis_url: str, counts: IoCounts
) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": "s",
            "WEBHOOK_VERIFY_TOKEN": "v",
            "ADMIN_API_KEY": "a",
            "OFFLINE_RESPONDER": "true",
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
            "IO_COUNTS": "true",
        }
    )
    container = build_container(settings, counts)
    container.init_resources()
    try:
        container.postgres_pool().wait()
        container.redis().ping()  # connected: the set-up commands are not this test's
        counts.take()

        lock = container.locks().acquire("conversation:1")
        assert lock is not None
        assert counts.take() == IoTally(redis_round_trips=1)
        container.rate_limits().hit("visitor:1", per_minute=5)
        assert counts.take().redis_round_trips >= 1
        with container.uow()() as uow:  # the selected factory, then a unit of work
            assert uow.users.get("no-such-user") is None
        assert counts.take() == IoTally(pg_statements=1)
    finally:
        container.shutdown_resources()
