"""The threaded RQ worker: many slow scopes at once in one process (drainers fan out to the backlog), and a
warm shutdown that waits for the scopes under way."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import redis
from pytest_mock import MockerFixture
from rq import Queue

from adapters.rq.queue import RqJobQueue
from entrypoints.worker.rq_worker import ConcurrentWorker, run_rq_worker
from tests.support.jobs_for_tests import RAN_KEY, RECORD, RECORD_SLOWLY, STOPPING
from tests.support.processes import wait_for

QUEUE = "test-concurrent"


def _ran(client: redis.Redis) -> list[str]:
    return [value.decode() for value in client.lrange(RAN_KEY, 0, -1)]


def _worker(redis_url: str, *, threads: int, burst: bool) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("fork").Process(
        target=run_rq_worker,
        args=(redis_url, QUEUE),
        kwargs={"on_start": None, "burst": burst, "threads": threads, "on_stop": STOPPING.set},
    )
    process.start()
    return process


def _only_queued_jobs_left(client: redis.Redis) -> bool:
    """result_ttl=0: a drainer that ran leaves nothing in Redis. A burst worker may stop with drainers still
    queued (the fan-out queued them as it ended): those stay, for the next worker."""
    from rq import Queue

    queued = {f"rq:job:{job_id}".encode() for job_id in Queue(QUEUE, connection=client).job_ids}
    return set(client.keys("rq:job:*")) <= queued


def _finished(client: redis.Redis) -> list[str]:
    return sorted(entry for entry in _ran(client) if entry.startswith("finished:"))


def _run_until(redis_url: str, condition: Callable[[], bool], *, threads: int, within_s: float = 30) -> float:
    """Seconds a (non-burst) worker took until `condition` held; the worker is then stopped with SIGTERM
    (a warm shutdown) and must exit cleanly."""
    started = time.monotonic()
    worker = _worker(redis_url, threads=threads, burst=False)
    try:
        while not condition() and time.monotonic() - started < within_s:
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(15)
    finally:
        worker.kill()
    assert worker.exitcode == 0
    return elapsed


def _run_until_finished(client: redis.Redis, redis_url: str, *, threads: int, scopes: int) -> float:
    """Seconds a (non-burst) worker took to finish `scopes` slow scopes; the worker is then stopped."""
    return _run_until(redis_url, lambda: len(_finished(client)) >= scopes, threads=threads)


def test_one_process_runs_as_many_slow_scopes_at_once_as_it_has_threads(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD_SLOWLY, job_timeout_s=30)
    for n in range(8):
        queue.enqueue_scope(f"conversation:{n}")

    elapsed = _run_until_finished(client, redis_url, threads=8, scopes=8)

    assert _finished(client) == sorted(f"finished:conversation:{n}" for n in range(8))
    assert elapsed < 4, f"8 one-second scopes on 8 threads took {elapsed:.1f} s: the drainers did not fan out"
    assert _only_queued_jobs_left(client)


def test_a_worker_never_runs_more_scopes_at_once_than_it_has_threads(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD_SLOWLY, job_timeout_s=30)
    for n in range(4):
        queue.enqueue_scope(f"conversation:{n}")

    elapsed = _run_until_finished(client, redis_url, threads=2, scopes=4)

    assert elapsed >= 2.0, "4 one-second scopes on 2 threads need two rounds"
    assert len(_finished(client)) == 4


def test_sigterm_lets_every_scope_under_way_finish(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD_SLOWLY, job_timeout_s=30)
    for n in range(3):
        queue.enqueue_scope(f"conversation:{n}")
    _run_until(
        redis_url, lambda: len([e for e in _ran(client) if e.startswith("started:")]) >= 3, threads=4, within_s=10
    )

    assert sorted(e for e in _ran(client) if e.startswith("finished:")) == [
        f"finished:conversation:{n}" for n in range(3)
    ]


@pytest.mark.parametrize("threads", [1, 4])
def test_a_busy_worker_writes_its_heartbeat_every_few_seconds_not_around_every_job(
    client: redis.Redis, redis_url: str, threads: int, mocker: MockerFixture
) -> None:
    from rq import Worker as RqWorker
    from rq.worker import BaseWorker

    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    for n in range(30):
        queue.enqueue_scope(f"conversation:{n}")
    written = mocker.spy(BaseWorker, "heartbeat")
    seen_registered: list[bool] = []
    mocker.patch(
        "tests.support.jobs_for_tests._push",
        side_effect=lambda value: seen_registered.append(bool(RqWorker.all(connection=client))),
    )

    run_rq_worker(redis_url, QUEUE, on_start=None, burst=True, threads=threads)

    assert len(seen_registered) == 30 and all(seen_registered), "the worker was not registered while it worked"
    stand_alone = [
        call
        for call in written.call_args_list
        if call.kwargs.get("pipeline", (*call.args, None, None, None)[2]) is None
    ]
    # RQ on its own writes three stand-alone heartbeats around every job (a drainer is a job).
    assert len(stand_alone) <= 3, f"{len(stand_alone)} stand-alone heartbeats for 30 scopes"
    assert _only_queued_jobs_left(client)


@pytest.mark.parametrize("threads", [1, 4])
def test_a_suspended_queue_is_left_alone_until_resumed(client: redis.Redis, redis_url: str, threads: int) -> None:
    from rq.suspension import resume, suspend

    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    for n in range(3):
        queue.enqueue_scope(f"conversation:{n}")
    suspend(client)
    try:
        run_rq_worker(redis_url, QUEUE, on_start=None, burst=True, threads=threads)
        assert _ran(client) == []
    finally:
        resume(client)

    run_rq_worker(redis_url, QUEUE, on_start=None, burst=True, threads=threads)

    assert sorted(_ran(client)) == [f"conversation:{n}|None" for n in range(3)]


def test_the_command_listener_stops_within_a_second_even_when_it_already_saw_the_unsubscribe(
    redis_url: str,
) -> None:
    # A warm shutdown unsubscribes, then stops RQ's listener thread and (redis-py 8.2) waits for it. A listener
    # that saw the unsubscribe first sleeps until it looks again: RQ's 60 s outlasted the supervisor's grace.
    connection = redis.Redis.from_url(redis_url)
    worker = ConcurrentWorker([Queue(QUEUE, connection=connection)], connection=connection, threads=1)
    worker.subscribe()
    pubsub = worker.pubsub
    assert pubsub is not None
    wait_for(lambda: pubsub.subscribed, timeout=5, what="the subscription", every=0.01)
    pubsub.unsubscribe()
    # The listener read the reply; it now waits for a new subscription.
    wait_for(lambda: not pubsub.subscribed, timeout=5, what="the unsubscribe to be read", every=0.01)

    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    started = time.monotonic()
    stopping.start()
    stopping.join(10)

    assert not stopping.is_alive(), "the listener kept the worker from stopping"
    assert time.monotonic() - started < 3
    worker.teardown()


def test_rq_commands_still_reach_a_worker_through_its_listener(redis_url: str) -> None:
    from rq.command import send_shutdown_command
    from rq.worker import Worker

    connection = redis.Redis.from_url(redis_url)
    worker = _worker(redis_url, threads=2, burst=False)
    try:
        wait_for(lambda: len(Worker.all(connection=connection)) == 1, timeout=15, what="the worker to register")
        send_shutdown_command(connection, Worker.all(connection=connection)[0].name)
        worker.join(15)
    finally:
        worker.kill()
    assert worker.exitcode == 0
    assert Worker.all(connection=connection) == []
