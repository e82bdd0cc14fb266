"""`mcagent worker`: a supervised set of RQ worker processes plus one recovery sweeper process."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from adapters.io_counts import IoCounts
from adapters.rq.background import background_queue_name
from entrypoints.container import Container, build_container
from entrypoints.heap import set_aside_startup_objects
from entrypoints.io_counting import WORKER, flush_io_counts, io_counts_for
from entrypoints.logging_setup import configure_logging
from entrypoints.scheduling import schedule_as_batch
from entrypoints.schema_check import wait_for_current_schema
from entrypoints.settings import Settings
from entrypoints.worker import jobs
from entrypoints.worker.rq_worker import run_rq_worker
from entrypoints.worker.scaling import ScalingPolicy
from entrypoints.worker.supervisor import Supervisor

log = logging.getLogger(__name__)

SWEEPER_LOCK = "mcagent:sweeper"

#: The supervisor's children: the sweeper, the background worker, then the reply workers.
SWEEPER = 0
BACKGROUND = 1
REPLY_WORKERS_FROM = 2


def run_workers(settings: Settings) -> None:
    """Block until SIGTERM: `settings.worker_concurrency` RQ workers and one sweeper, all restarted if they die.

    Raises SchemaNotCurrent, before anything is forked, on a database not at this release's schema: children
    restarted in a loop would only fail on it again and again.
    """
    wait_for_current_schema(settings)
    if settings.worker_sched_batch:
        schedule_as_batch()  # before anything is forked or started: every child and thread inherits it
    if settings.offline_responder:
        log.warning("offline_responder_answers", extra={"reason": "OFFLINE_RESPONDER=true: no OpenAI calls"})

    def child(index: int) -> None:
        configure_logging(settings.log_level, settings.log_format)
        io_counts = io_counts_for(settings, WORKER)
        try:
            if index == SWEEPER:
                run_sweeper(settings, io_counts=io_counts)
            elif index == BACKGROUND:
                run_rq_worker(
                    _required(settings.redis_url),
                    background_queue_name(settings.queue_name),
                    on_start=lambda: _start_container(settings, io_counts),
                    threads=settings.background_worker_threads,
                    io_counts=io_counts,
                )
            else:
                run_rq_worker(
                    _required(settings.redis_url),
                    settings.queue_name,
                    on_start=lambda: _start_container(settings, io_counts),
                    threads=settings.worker_threads,
                    io_counts=io_counts,
                    on_stop=jobs.STOPPING.set,
                )
        finally:
            flush_io_counts()  # multiprocessing ends the child with os._exit: no atexit

    # Child 0 is the sweeper, child 1 the background worker (extractions, webhooks: never in a reply's
    # way); the pool of reply workers is children 2..n+1 and is what scales.
    Supervisor(child, settings.worker_concurrency + REPLY_WORKERS_FROM, scale=_scaler(settings)).run()


def _scaler(settings: Settings) -> Callable[[int], int] | None:
    if settings.worker_max_processes == settings.worker_concurrency:
        return None
    from adapters.redis.client import redis_client
    from adapters.rq.queue import RqJobQueue

    policy = ScalingPolicy(
        minimum=settings.worker_concurrency,
        maximum=settings.worker_max_processes,
        threads_per_process=settings.worker_threads,
        grow_after_s=settings.scale_up_age_ms / 1000,
        shrink_after_s=settings.scale_down_idle_ms / 1000,
    )
    # A client without background threads: the supervisor keeps forking children.
    queue = RqJobQueue(redis_client(_required(settings.redis_url), socket_timeout_s=2.0), settings.queue_name, "", 0)

    def scale(processes: int) -> int:
        workers = policy.decide(processes - REPLY_WORKERS_FROM, queue.queue_depth(), queue.oldest_job_age_s())
        return workers + REPLY_WORKERS_FROM

    return scale


def _start_container(settings: Settings, io_counts: IoCounts | None) -> None:
    container = build_container(settings, io_counts)
    container.init_resources()
    jobs.bind(container)
    set_aside_startup_objects()


def run_sweeper(settings: Settings, stop: threading.Event | None = None, *, io_counts: IoCounts | None = None) -> None:
    """Every RECOVERY_INTERVAL_MS, queue stalled work again. One sweeper at a time does the work
    (a lock only its holder can release); the others wait their turn, so losing a machine loses nothing."""
    stop = stop or _stop_on_sigterm()
    container = build_container(settings, io_counts)
    container.init_resources()
    locks = container.locks()
    sweeps = sweeps_of(container)
    interval_s = settings.recovery_interval_ms / 1000
    try:
        while not stop.is_set():
            leadership = locks.acquire(SWEEPER_LOCK)
            if leadership is not None:
                try:
                    while not stop.is_set() and not leadership.lost:
                        for sweep in sweeps:
                            sweep_once(sweep)
                        stop.wait(interval_s)
                finally:
                    leadership.release()
            stop.wait(interval_s)
    finally:
        container.shutdown_resources()


def sweeps_of(container: Container) -> list[Callable[[], int]]:
    """What each sweep does, in order: end pauses that ran out, queue stalled replies again, then the
    background work found by the database (due extractions, the account's notifications, webhook retries)."""
    return [
        container.resume_ended_pauses(),
        container.recover_stalled_work(),
        container.schedule_extractions(),
        container.notify_account_events(),
        container.schedule_webhook_deliveries(),
    ]


def sweep_once(recover: Callable[[], int]) -> None:
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
