"""RqJobQueue (due scopes drained by RQ jobs) and the in-process RQ worker against the real Redis."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest
import redis
from rq import Queue

from adapters.redis.client import redis_client
from adapters.rq.queue import DRAIN_LIFETIME_S, RqJobQueue
from application.ports.services import QueueUnavailable
from entrypoints.worker.rq_worker import run_rq_worker
from tests.support.jobs_for_tests import RAN_KEY, RECORD, RECORD_SLOWLY, STOPPING

QUEUE = "test-scopes"


def _ran(client: redis.Redis) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in client.lrange(RAN_KEY, 0, -1)]


def _run_worker_in_child(redis_url: str, *, burst: bool) -> multiprocessing.process.BaseProcess:
    # RQ installs its signal handlers in the process it runs in: keep them out of pytest's.
    def on_start() -> None:
        redis_client(redis_url, socket_timeout_s=2).rpush(RAN_KEY, "on_start")

    worker = multiprocessing.get_context("fork").Process(
        target=run_rq_worker,
        args=(redis_url, QUEUE),
        kwargs={"on_start": on_start, "burst": burst, "on_stop": STOPPING.set},
    )
    worker.start()
    return worker


def test_a_due_scope_is_one_entry_and_one_drainer_job_that_keeps_nothing_after_it(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=120)
    queue.enqueue_scope("conversation:7", correlation_id="req-1")
    queue.enqueue_scope("conversation:8")

    [job] = Queue(QUEUE, connection=client).get_jobs()  # the second scope waits for the same drainer
    assert job.func_name == RECORD
    assert job.args == () and job.kwargs == {}
    assert job.timeout == 120 + int(DRAIN_LIFETIME_S), "a drainer answers for its lifetime, then one scope more"
    assert job.result_ttl == 0
    assert job.failure_ttl == 7 * 24 * 3600
    assert job.ttl is None
    assert job.retries_left is None
    first = queue.take()
    assert first is not None
    assert (first.scope_key, first.correlation_id) == ("conversation:7", "req-1")
    assert abs(first.due_at_ms / 1000 - time.time()) < 5
    second = queue.take()
    assert second is not None and (second.scope_key, second.correlation_id) == ("conversation:8", None)
    assert queue.take() is None


def test_taking_a_scope_clears_its_mark_so_new_work_makes_it_due_again(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    queue.enqueue_scope("conversation:1")
    queue.enqueue_scope("conversation:1")
    assert queue.queue_depth() == 1

    assert queue.take() is not None
    queue.enqueue_scope("conversation:1")
    assert queue.queue_depth() == 1


def test_drainers_follow_the_backlog_one_waiting_at_a_time(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    rq_queue = Queue(QUEUE, connection=client)
    for n in range(5):
        queue.enqueue_scope(f"conversation:{n}")
    assert rq_queue.count == 1, "one drainer waits to start, however many scopes are due"

    rq_queue.empty()  # a worker took that drainer
    assert queue.take() is not None
    assert rq_queue.count == 1, "a backlog behind the scope taken, and no drainer waiting: one more is queued"
    assert queue.take() is not None
    assert rq_queue.count == 1, "one waits already: none more"

    rq_queue.empty()
    for _ in range(3):
        assert queue.take() is not None
    assert rq_queue.count == 1, "queued while the fourth was taken with the fifth behind it"
    rq_queue.empty()
    queue.enqueue_scope("conversation:9")
    assert rq_queue.count == 1, "a scope due with no drainer waiting queues one"


def test_a_blocking_take_gets_a_scope_due_while_it_waits(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    threading.Timer(0.3, lambda: queue.enqueue_scope("conversation:3", correlation_id="late")).start()

    due = queue.take(block_s=2)

    assert due is not None and (due.scope_key, due.correlation_id) == ("conversation:3", "late")
    queue.enqueue_scope("conversation:3")
    assert queue.queue_depth() == 1, "the blocking take cleared the scope's mark too"


def test_a_blocking_take_with_a_backlog_behind_it_queues_one_more_drainer(client: redis.Redis) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    rq_queue = Queue(QUEUE, connection=client)
    for n in range(3):
        queue.enqueue_scope(f"conversation:{n}")
    rq_queue.empty()  # a worker took the first drainer

    first = queue.take(block_s=1)
    assert first is not None and first.scope_key == "conversation:0"
    assert rq_queue.count == 1, "two more due and no drainer waiting: one is queued"
    assert queue.take(block_s=1) is not None
    assert rq_queue.count == 1, "one waits already: none more"
    rq_queue.empty()
    last = queue.take(block_s=1)
    assert last is not None and last.scope_key == "conversation:2"
    assert rq_queue.count == 0, "nothing behind the last: no drainer queued"
    queue.enqueue_scope("conversation:0")
    assert queue.queue_depth() == 1, "the blocking take cleared the mark of the scope it took"


def test_a_drainer_stops_when_idle_at_its_limit_when_stopped_and_at_the_end_of_its_lifetime(
    client: redis.Redis,
) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    taken: list[str] = []
    for n in range(4):
        queue.enqueue_scope(f"conversation:{n}")

    assert queue.drain(lambda due: taken.append(due.scope_key), threading.Event(), limit=2) == 2
    assert taken == ["conversation:0", "conversation:1"]

    stop = threading.Event()
    assert queue.drain(lambda due: (taken.append(due.scope_key), stop.set()), stop) == 1
    assert taken[-1] == "conversation:2"

    ticks = iter([0.0, 0.0, 100.0, 100.0])
    assert (
        queue.drain(
            lambda due: taken.append(due.scope_key), threading.Event(), lifetime_s=50, clock=lambda: next(ticks)
        )
        == 1
    )
    assert taken[-1] == "conversation:3"

    started = time.monotonic()
    assert queue.drain(lambda due: taken.append(due.scope_key), threading.Event(), idle_s=1) == 0
    assert time.monotonic() - started < 5, "an idle drainer ends after its idle time"


def test_a_scope_key_with_a_space_is_refused(client: redis.Redis) -> None:
    with pytest.raises(ValueError):
        RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30).enqueue_scope("conversation:1 2")


def test_worker_drains_scopes_in_order_after_on_start(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD, job_timeout_s=30)
    for n in range(3):
        queue.enqueue_scope(f"conversation:{n}", correlation_id=f"req-{n}")

    worker = _run_worker_in_child(redis_url, burst=True)
    worker.join(30)

    assert worker.exitcode == 0
    assert _ran(client) == ["on_start", "conversation:0|req-0", "conversation:1|req-1", "conversation:2|req-2"]
    assert queue.queue_depth() == 0
    assert client.keys("rq:job:*") == [], "result_ttl=0: finished drainers leave nothing in Redis"


def test_sigterm_lets_the_scope_under_way_finish_and_takes_no_more(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, QUEUE, RECORD_SLOWLY, job_timeout_s=30)
    queue.enqueue_scope("conversation:1")
    queue.enqueue_scope("conversation:2")
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
    assert queue.queue_depth() == 1, "the scope not taken stays due for the next worker"


def test_queue_depth_and_age_of_the_oldest_due_scope(client: redis.Redis) -> None:
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


def test_a_scope_already_due_is_not_queued_twice_until_taken_unless_forced(client: redis.Redis) -> None:
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
