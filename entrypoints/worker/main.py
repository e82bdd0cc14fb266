"""`mcagent worker`: a supervised set of RQ worker processes plus one recovery sweeper process."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from entrypoints.container import build_container
from entrypoints.logging_setup import configure_logging
from entrypoints.settings import Settings
from entrypoints.worker import jobs
from entrypoints.worker.rq_worker import run_rq_worker
from entrypoints.worker.supervisor import Supervisor

log = logging.getLogger(__name__)

SWEEPER_LOCK = "mcagent:sweeper"


def run_workers(settings: Settings) -> None:
    """Block until SIGTERM: `settings.worker_concurrency` RQ workers and one sweeper, all restarted if they die."""

    def child(index: int) -> None:
        configure_logging(settings.log_level, settings.log_format)
        if index == 0:
            run_sweeper(settings)
        else:
            run_rq_worker(
                _required(settings.redis_url),
                settings.queue_name,
                on_start=lambda: _start_container(settings),
            )

    Supervisor(child, settings.worker_concurrency + 1).run()


def _start_container(settings: Settings) -> None:
    container = build_container(settings)
    container.init_resources()
    jobs.bind(container)


def run_sweeper(settings: Settings, stop: threading.Event | None = None) -> None:
    """Every RECOVERY_INTERVAL_MS, queue stalled work again. One sweeper at a time does the work
    (a lock only its holder can release); the others wait their turn, so losing a machine loses nothing."""
    stop = stop or _stop_on_sigterm()
    container = build_container(settings)
    container.init_resources()
    locks = container.locks()
    recover = container.recover_stalled_work()
    interval_s = settings.recovery_interval_ms / 1000
    try:
        while not stop.is_set():
            leadership = locks.acquire(SWEEPER_LOCK)
            if leadership is not None:
                try:
                    while not stop.is_set() and not leadership.lost:
                        _sweep_once(recover)
                        stop.wait(interval_s)
                finally:
                    leadership.release()
            stop.wait(interval_s)
    finally:
        container.shutdown_resources()


def _sweep_once(recover: Callable[[], int]) -> None:
    try:
        recover()
    except Exception:
        # Postgres or Redis briefly down: the next sweep tries again; the sweeper must not die of it.
        log.exception("sweep_failed")


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def _required(value: str | None) -> str:
    if value is None:
        raise RuntimeError("REDIS_URL is required to run RQ workers")
    return value
