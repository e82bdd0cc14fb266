"""Drainers that RQ workers run in the integration tests: they take due scopes as the product's drainer
does (`RqJobQueue.drain`) and leave a trace of each in Redis instead of answering it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rq import get_current_job

from adapters.rq.queue import DueScope, RqJobQueue

#: The Redis list each drainer appends to, in the order the scopes were taken.
RAN_KEY = "test:jobs:ran"

RECORD = "tests.support.jobs_for_tests.record_scopes"
RECORD_SLOWLY = "tests.support.jobs_for_tests.record_scopes_slowly"

#: Set by the worker's `on_stop` (a warm shutdown), as `entrypoints.worker.jobs.STOPPING` is.
STOPPING = threading.Event()


def record_scopes() -> int:
    return _drain(RECORD, lambda due: _push(f"{due.scope_key}|{due.correlation_id}"))


def record_scopes_slowly() -> int:
    """Marks each scope's start, takes a second, then records: long enough to be caught by a SIGTERM."""

    def slowly(due: DueScope) -> None:
        _push(f"started:{due.scope_key}")
        time.sleep(1.0)
        _push(f"finished:{due.scope_key}")

    return _drain(RECORD_SLOWLY, slowly)


def _drain(function: str, handle: Callable[[DueScope], object]) -> int:
    job = get_current_job()
    assert job is not None, "only meant to run inside an RQ job"
    # Without waiting for more: a burst worker's test ends as soon as the list is empty.
    return RqJobQueue(job.connection, job.origin, function, job_timeout_s=30).drain(handle, STOPPING, idle_s=0)


def _push(value: str) -> None:
    job = get_current_job()
    assert job is not None, "only meant to run inside an RQ job"
    job.connection.rpush(RAN_KEY, value)
