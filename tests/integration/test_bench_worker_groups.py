"""The benchmark's process monitor with several worker supervisors (`--worker-groups`), on real processes:
each group's CPU is counted apart and all of it as the workers', a child that died and was reaped included."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.procstats import ProcessMonitor, all_stats, children_by_start
from tests.support.processes import wait_for

# A stand-in supervisor: one child that, on a line from stdin, burns 0.4 s of CPU and exits (argument `burn`)
# or keeps sleeping; the supervisor reaps it and lives on, as `mcagent worker` does with a dead child.
SUPERVISOR = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c", sys.argv[1], sys.argv[2]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
)
print(child.stdout.readline().strip(), flush=True)  # the child's "ready": its start-up is over
line = sys.stdin.readline()
child.stdin.write(line)
child.stdin.flush()
if sys.argv[2] == "burn":
    child.wait()
time.sleep(60)
"""
CHILD = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "burn":
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
else:
    time.sleep(60)
"""


@pytest.fixture
def supervisors() -> Iterator[list[subprocess.Popen[str]]]:
    started = [
        subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, CHILD, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for kind in ("burn", "idle")
    ]
    for process in started:  # both trees past their start-up (an interpreter's, slower under coverage)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    yield started
    for process in started:
        for child in children_by_start(process.pid, all_stats()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait(5)


def test_each_worker_groups_cpu_is_counted_apart_and_all_of_it_as_the_workers(
    supervisors: list[subprocess.Popen[str]],
) -> None:
    pids = [process.pid for process in supervisors]
    wait_for(lambda: all(children_by_start(pid, all_stats()) for pid in pids), timeout=10, what="children")
    children = [children_by_start(pid, all_stats())[0] for pid in pids]
    monitor = ProcessMonitor(
        service_roots=pids,
        supervisor_pids=pids,
        web_pid=None,
        redis_pid=None,
        harness_pids=[],
        database_name="not-a-database",
    )
    monitor.sample()
    monitor.follow({"child": children})
    monitor.mark_baseline()
    assert monitor.roles_whole_window()

    for process in supervisors:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    wait_for(lambda: not children_by_start(pids[0], all_stats()), timeout=10, what="the burning child's end")
    time.sleep(0.1)
    monitor.sample()

    burning, idle = monitor.worker_groups
    assert burning.cpu_s() >= 0.35
    assert idle.cpu_s() < 0.1
    assert monitor.workers.cpu_s() == pytest.approx(burning.cpu_s() + idle.cpu_s())
    assert monitor.samples[-1].supervisor_children == 1
    # The burning child died: its role's count no longer covers the window, and the report must say so.
    assert not monitor.roles_whole_window()
