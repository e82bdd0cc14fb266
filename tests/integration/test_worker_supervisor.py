"""The worker supervisor with real child processes; the children report to the real Redis."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import pytest
import redis
from rq.worker import SimpleWorker
from structlog.testing import capture_logs

from adapters.redis.client import redis_client
from adapters.rq.queue import RqJobQueue
from entrypoints.worker.rq_worker import run_rq_worker
from entrypoints.worker.supervisor import Supervisor
from tests.support.jobs_for_tests import RAN_KEY, RECORD

STARTED = "test:supervisor:started"
STOPPED = "test:supervisor:stopped"


def _reported(client: redis.Redis, key: str) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in client.lrange(key, 0, -1)]


def _wait_for(condition: Callable[[], bool], *, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _work_until_terminated(redis_url: str) -> Callable[[int], None]:
    def target(index: int) -> None:
        client = redis_client(redis_url, socket_timeout_s=2)

        def stop(_signum: int, _frame: FrameType | None) -> None:
            client.rpush(STOPPED, str(index))
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        client.rpush(STARTED, f"{index}:{os.getpid()}")
        while True:
            time.sleep(0.1)

    return target


def _ignore_sigterm(_index: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(0.1)


def _run_driven(supervisor: Supervisor, drive: Callable[[], None]) -> None:
    """Runs the supervisor in this (main) thread while `drive` acts on it; SIGTERM to ourselves ends it."""
    failures: list[BaseException] = []

    def driver() -> None:
        try:
            drive()
        except BaseException as error:  # re-raised in the test's thread below
            failures.append(error)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=driver)
    thread.start()
    supervisor.run()
    thread.join()
    if failures:
        raise failures[0]


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(client: redis.Redis, redis_url: str) -> None:
    supervisor = Supervisor(_work_until_terminated(redis_url), processes=2, restart_delay_s=0.05)
    previous_sigterm_handler = signal.getsignal(signal.SIGTERM)
    seen: dict[str, list[int]] = {}

    def drive() -> None:
        _wait_for(lambda: len(_reported(client, STARTED)) == 2)
        seen["before"] = supervisor.child_pids()
        victim = seen["before"][0]
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_reported(client, STARTED)) == 3)
        seen["after"] = supervisor.child_pids()

    started = time.monotonic()
    _run_driven(supervisor, drive)

    assert time.monotonic() - started < 10
    assert len(seen["after"]) == 2
    assert seen["before"][0] not in seen["after"]
    assert seen["before"][1] in seen["after"]
    assert sorted(_reported(client, STOPPED)) == ["0", "1"], "each child got SIGTERM and stopped by itself"
    assert not any(_is_running(pid) for pid in seen["before"] + seen["after"])
    assert supervisor.child_pids() == []
    assert signal.getsignal(signal.SIGTERM) is previous_sigterm_handler


def test_children_that_ignore_sigterm_are_killed_after_the_grace_period() -> None:
    supervisor = Supervisor(_ignore_sigterm, processes=2, grace_period_s=0.5)
    pids: list[int] = []

    def drive() -> None:
        _wait_for(lambda: len(supervisor.child_pids()) == 2)
        time.sleep(0.2)  # let the children install their SIG_IGN
        pids.extend(supervisor.child_pids())

    started = time.monotonic()
    _run_driven(supervisor, drive)

    assert 0.5 <= time.monotonic() - started < 5
    assert not any(_is_running(pid) for pid in pids)


def _stuck_waiting_for_nothing(_index: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Event().wait()


def test_a_child_killed_after_the_grace_period_first_writes_where_each_thread_was(
    capfd: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor(_stuck_waiting_for_nothing, processes=1, grace_period_s=0.3)

    def drive() -> None:
        _wait_for(lambda: len(supervisor.child_pids()) == 1)
        time.sleep(0.2)  # let the child install its SIG_IGN

    with capture_logs() as logs:
        _run_driven(supervisor, drive)

    written = capfd.readouterr().err
    assert "most recent call first" in written
    assert "_stuck_waiting_for_nothing" in written
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert warnings == ["worker_process_killed_after_grace"]


def test_a_child_that_keeps_dying_is_restarted_ever_more_slowly(client: redis.Redis, redis_url: str) -> None:
    def crash_at_start(_index: int) -> None:
        redis_client(redis_url, socket_timeout_s=2).rpush(STARTED, repr(time.monotonic()))
        raise SystemExit(3)

    supervisor = Supervisor(crash_at_start, processes=1, restart_delay_s=0.05, max_restart_delay_s=0.4)

    _run_driven(supervisor, lambda: _wait_for(lambda: len(_reported(client, STARTED)) >= 6))

    starts = [float(value) for value in _reported(client, STARTED)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # Each gap is the restart delay (0.05, 0.1, 0.2, 0.4, 0.4 s) plus a child's start-up and death, which
    # a loaded machine (or coverage in every child) stretches; the delays' growth is what must show.
    assert gaps[4] - gaps[0] >= 0.25, f"restarts should back off up to max_restart_delay_s, gaps were {gaps}"
    assert gaps[4] - gaps[3] < 0.3, f"the delay stops growing at max_restart_delay_s (0.4 s), gaps were {gaps}"


def test_supervised_rq_workers_share_the_queue_and_stop_on_sigterm(client: redis.Redis, redis_url: str) -> None:
    queue = RqJobQueue(client, "test-scopes", RECORD, job_timeout_s=30)
    for n in range(20):
        queue.enqueue_scope(f"conversation:{n}")

    def rq_worker(index: int) -> None:
        def report_start() -> None:
            client.rpush(STARTED, str(index))

        run_rq_worker(redis_url, "test-scopes", on_start=report_start)

    supervisor = Supervisor(rq_worker, processes=2)
    pids: list[int] = []

    def drive() -> None:
        _wait_for(lambda: client.llen(RAN_KEY) == 20)
        # One drainer may take all 20 before the other worker is up. RQ registers a worker before it
        # installs its SIGTERM handler, so stop only once both are listening (a worker killed in between
        # by the signal's default action could not deregister: RQ's own start-up gap, not ours).
        _wait_for(
            lambda: sorted(worker.get_state() for worker in SimpleWorker.all(connection=client)) == ["idle", "idle"]
        )
        pids.extend(supervisor.child_pids())

    _run_driven(supervisor, drive)

    assert sorted(_reported(client, STARTED)) == ["0", "1"]
    assert sorted(_reported(client, RAN_KEY)) == sorted(f"conversation:{n}|None" for n in range(20))
    assert not any(_is_running(pid) for pid in pids)
    assert SimpleWorker.all(connection=client) == [], "workers that stopped on SIGTERM deregistered themselves"


def test_the_pool_grows_and_shrinks_as_the_scaling_decision_says_and_retired_members_are_not_restarted(
    client: redis.Redis, redis_url: str
) -> None:
    wanted = {"count": 1}
    supervisor = Supervisor(
        _work_until_terminated(redis_url),
        processes=1,
        restart_delay_s=0.05,
        scale=lambda _current: wanted["count"],
        scale_interval_s=0.1,
    )
    seen: dict[str, int] = {}

    def drive() -> None:
        _wait_for(lambda: len(_reported(client, STARTED)) == 1)
        wanted["count"] = 3
        _wait_for(lambda: len(supervisor.child_pids()) == 3)
        seen["grown"] = supervisor.processes
        # Shrink only once the new members run: one forked a moment ago has not installed its SIGTERM
        # handler yet, and would die of the signal without saying it stopped.
        _wait_for(lambda: len(_reported(client, STARTED)) == 3)
        wanted["count"] = 1
        _wait_for(lambda: len(supervisor.child_pids()) == 1)
        time.sleep(0.5)  # a retired member must stay retired
        seen["shrunk"] = len(supervisor.child_pids())

    _run_driven(supervisor, drive)

    assert seen == {"grown": 3, "shrunk": 1}
    assert sorted(_reported(client, STOPPED)) == ["0", "1", "2"], "retired members got SIGTERM, not SIGKILL"
    assert len(_reported(client, STARTED)) == 3
