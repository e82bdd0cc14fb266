"""The workers run as batch work (`SCHED_BATCH`, WORKER_SCHED_BATCH), every process and thread of them, while
the web keeps the normal policy: a webhook arriving still preempts a worker."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.e2e.harness import System, wait_for


def _policies(pids: list[int]) -> set[int]:
    """The scheduling policy of every thread of these processes."""
    policies = set()
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                policies.add(os.sched_getscheduler(int(tid)))
            except ProcessLookupError:  # a thread that ended since the listing
                continue
    return policies


@pytest.mark.parametrize(("setting", "policy"), [(None, os.SCHED_BATCH), ("false", os.SCHED_OTHER)])
def test_every_thread_of_the_workers_runs_under_the_policy_the_setting_asks_for(
    make_system: Callable[..., System], setting: str | None, policy: int
) -> None:
    system = make_system(WORKER_CONCURRENCY="1", **({} if setting is None else {"WORKER_SCHED_BATCH": setting}))
    system.start_web()
    system.start_workers()
    workers, web = system.workers, system.web
    assert workers is not None and web is not None
    # The sweeper, the background worker and one reply worker; the RQ workers' threads start with them.
    wait_for(
        lambda: (
            len(children := workers.children()) == 3
            and all(len(os.listdir(f"/proc/{pid}/task")) > 2 for pid in children[1:])
        ),
        timeout=30,
        what="the worker's three processes and their threads",
    )
    worker_pids = [workers.process.pid, *workers.children()]

    assert sum(len(os.listdir(f"/proc/{pid}/task")) for pid in worker_pids) > 10
    assert _policies(worker_pids) == {policy}
    assert _policies([web.process.pid, *web.children()]) == {os.SCHED_OTHER}
