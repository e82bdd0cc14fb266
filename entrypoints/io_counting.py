"""IO_COUNTS in one process: its one counter, added to Redis every second by a daemon thread and at exit.

Every client and pool of the process counts into the same `IoCounts`, so the entry point asks for it
first (`io_counts_for`) and hands it to what it builds. A forked child starts without its parent's
counter: flushing the copy of the parent's counts would count them twice.
"""

from __future__ import annotations

import atexit
import os
import threading

from adapters.io_counts import IoCounts, IoCountsFlusher
from adapters.redis.client import redis_client
from entrypoints.settings import Settings

#: The process roles the counts are split by (`web:redis_round_trips`, `worker:pg_statements`).
WEB = "web"
WORKER = "worker"


class _ThisProcess:
    lock = threading.Lock()
    counts: IoCounts | None = None
    flusher: IoCountsFlusher | None = None


def io_counts_for(settings: Settings, role: str) -> IoCounts | None:
    """This process's counter with IO_COUNTS on (the first call starts flushing it, as `role`); None with it off."""
    if not settings.io_counts or settings.redis_url is None:
        return None
    with _ThisProcess.lock:
        if _ThisProcess.counts is None:
            counts = IoCounts()
            # A client of its own that does not count: the flushes would count themselves.
            flusher = IoCountsFlusher(redis_client(settings.redis_url, socket_timeout_s=2.0), counts, role)
            flusher.start()
            _ThisProcess.counts, _ThisProcess.flusher = counts, flusher
        return _ThisProcess.counts


def flush_io_counts() -> None:
    """Add what this process counted since the last flush, now and for the last time (a process ending).

    atexit covers gunicorn's workers; the worker supervisor's children end with `os._exit` (multiprocessing),
    which skips atexit, so they call this themselves.
    """
    flusher = _ThisProcess.flusher
    if flusher is not None:
        flusher.stop()


def _forget_in_child() -> None:
    _ThisProcess.lock = threading.Lock()
    _ThisProcess.counts = _ThisProcess.flusher = None


atexit.register(flush_io_counts)
os.register_at_fork(after_in_child=_forget_in_child)
