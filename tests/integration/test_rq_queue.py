"""RqJobQueue and the in-process RQ worker against the real Redis."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
import redis
from rq import Queue

from adapters.redis.client import redis_client
from adapters.rq.queue import RqJobQueue
from application.ports.services import QueueUnavailable
from entrypoints.worker.rq_worker import run_rq_worker
from tests.support.jobs_for_tests import RAN_KEY

QUEUE = "test-scopes"
RECORD = "tests.support.jobs_for_tests.record_scope"
RECORD_SLOWLY = "tests.support.jobs_for_tests.record_scope_slowly"


def _ran(client: redis.Redis) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in client.lrange(RAN_KEY, 0, -1)]


def _run_worker_in_child(redis_url: str, *, burst: bool) -> multiprocessing.process.BaseProcess:
    # RQ installs its signal handlers in the process it runs in: keep them out of pytest's.
    def on_start() -> None:
        redis_client(redis_url, socket_timeout_s=2).rpush(RAN_KEY, "on_start")

    worker = multiprocessing.get_context("fork").Process(
        target=run_rq_worker, args=(redis_url, QUEUE), kwargs={"on_start": on_start, "burst": burst}
    )
    worker.start()
    return worker


def test_enqueued_job_carries_the_scope_and_keeps_nothing_after_it(client: redis.Redis) -> None:
    RqJobQueue(client, QUEUE, RECORD, job_timeout_s=120).enqueue_scope("conversation:7", correlation_id="req-1")

    [job] = Queue(QUEUE, connection=client).get_jobs()
    assert job.func_name == RECORD
    assert job.args == ("conversation:7",)
    assert job.kwargs == {"correlation_id": "req-1"}
    assert job.timeout == 120
    assert job.result_ttl == 0
    assert job.failure_ttl == 7 * 24 * 3600
    assert job.ttl is None
    assert job.retries_left is None


def test_worker_runs_jobs_in_order_after_on_start(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    for n in range(3):
        queue.enqueue_scope(f"conversation:{n}", correlation_id=f"req-{n}")

    worker = _run_worker_in_child(redis_url, burst=True)
    worker.join(30)

    assert worker.exitcode == 0
    assert _ran(client) == ["on_start", "conversation:0|req-0", "conversation:1|req-1", "conversation:2|req-2"]
    assert queue.queue_depth() == 0
    assert client.keys("rq:job:*") == [], "result_ttl=0: finished jobs leave nothing in Redis"


def test_sigterm_lets_the_job_under_way_finish(client: redis.Redis, redis_url: str) -> None:
    RqJobQueue(client, QUEUE, RECORD_SLOWLY, job_timeout_s=30).enqueue_scope("conversation:1")
    worker = _run_worker_in_child(redis_url, burst=False)
    try:
        deadline = time.monotonic() + 10
        while "started:conversation:1" not in _ran(client) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(10)
    finally:
        worker.kill()

    assert worker.exitcode == 0
    assert _ran(client) == ["on_start", "started:conversation:1", "finished:conversation:1"]


def test_queue_depth_and_age_of_the_oldest_job(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    assert queue.queue_depth() == 0
    assert queue.oldest_job_age_s() is None

    queue.enqueue_scope("conversation:1")
    time.sleep(0.2)
    queue.enqueue_scope("conversation:2")

    assert queue.queue_depth() == 2
    age = queue.oldest_job_age_s()
    assert age is not None
    assert 0.2 <= age < 5


def test_enqueue_with_redis_down_raises_queue_unavailable() -> None:
    queue = RqJobQueue(redis_client("redis://127.0.0.1:1/0", socket_timeout_s=0.5), QUEUE, RECORD, job_timeout_s=30)

    with pytest.raises(QueueUnavailable):
        queue.enqueue_scope("conversation:1")
    with pytest.raises(QueueUnavailable):
        queue.queue_depth()
    with pytest.raises(QueueUnavailable):
        queue.oldest_job_age_s()


def test_a_scope_with_a_job_waiting_gets_no_second_job_until_the_first_starts(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    queue.enqueue_scope("conversation:1")
    queue.enqueue_scope("conversation:1")
    queue.enqueue_scope("conversation:2")
    assert queue.queue_depth() == 2

    queue.taken("conversation:1")
    queue.enqueue_scope("conversation:1")
    assert queue.queue_depth() == 3

    queue.enqueue_scope("conversation:2", force=True)  # the sweep does not trust the mark
    assert queue.queue_depth() == 4
