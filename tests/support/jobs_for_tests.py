"""Job functions that RQ workers run in the integration tests: they leave their trace in Redis."""

from __future__ import annotations

import time

from rq import get_current_job

#: The Redis list each job appends to, in the order the jobs ran.
RAN_KEY = "test:jobs:ran"


def record_scope(scope_key: str, *, correlation_id: str | None = None) -> None:
    _push(f"{scope_key}|{correlation_id}")


def record_scope_slowly(scope_key: str, *, correlation_id: str | None = None) -> None:
    """Marks its start, takes a second, then records: long enough to be caught by a SIGTERM."""
    _push(f"started:{scope_key}")
    time.sleep(1.0)
    _push(f"finished:{scope_key}")


def _push(value: str) -> None:
    job = get_current_job()
    assert job is not None, "only meant to run inside an RQ job"
    job.connection.rpush(RAN_KEY, value)
