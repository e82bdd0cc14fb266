"""`schedule_as_batch`: the calling thread and what it starts from then on run as batch work."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import pytest

from entrypoints import scheduling


def _in_a_thread_of_its_own(body: Callable[[dict[str, object]], None]) -> dict[str, object]:
    seen: dict[str, object] = {}
    thread = threading.Thread(target=body, args=(seen,))
    thread.start()
    thread.join()
    return seen


def test_the_calling_thread_and_the_threads_it_starts_run_as_batch_work_and_no_other() -> None:
    def body(seen: dict[str, object]) -> None:
        seen["answer"] = scheduling.schedule_as_batch()
        seen["itself"] = os.sched_getscheduler(0)
        child = threading.Thread(target=lambda: seen.__setitem__("started", os.sched_getscheduler(0)))
        child.start()
        child.join()

    seen = _in_a_thread_of_its_own(body)

    assert seen == {"answer": True, "itself": os.SCHED_BATCH, "started": os.SCHED_BATCH}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test's own thread was left alone


def test_a_platform_without_the_policy_runs_as_before(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(os, "sched_setscheduler")
    caplog.set_level(logging.INFO, logger=scheduling.__name__)

    assert scheduling.schedule_as_batch() is False
    assert [r.message for r in caplog.records] == ["batch_scheduling_unavailable"]


def test_a_refusal_is_logged_and_the_workers_run_as_before(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    caplog.set_level(logging.INFO, logger=scheduling.__name__)

    assert scheduling.schedule_as_batch() is False
    [record] = caplog.records
    assert (record.levelname, record.message) == ("WARNING", "batch_scheduling_refused")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
