"""One RQ worker process: takes scope jobs from the queue and runs them, in the worker process itself.

RQ's default `Worker` forks a fresh process per job, which would open every pool and client again
for each job. Two ways instead, chosen by WORKER_THREADS:
- `InProcessWorker` (one thread): each job in the worker process;
- `ConcurrentWorker` (N threads): up to N jobs at once in one process. A job spends nearly all
  its time waiting for OpenAI, so one process can keep many turns in flight for the memory and
  CPU of one interpreter instead of N.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import structlog
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import StopRequested
from rq.job import Job
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker

from adapters.io_counts import IoCounts
from adapters.redis.client import redis_client

#: RQ raises the socket timeout of its own connection to cover its blocking dequeue; this bounds the rest.
_WORKER_SOCKET_TIMEOUT_S = 10.0


#: `rq suspend` is looked for at most this often (RQ asks Redis before every job).
_SUSPENSION_CHECK_EVERY_S = 1.0

#: How long RQ's command listener waits for a message at a time; RQ's own is 60 s (see `subscribe`).
_LISTENER_WAKE_S = 1.0

#: A worker's own heartbeat is written at most this often. RQ writes it three times around every job
#: (three round trips each) to keep a key alive for `worker_ttl` (420 s); once every few seconds does that.
_HEARTBEAT_EVERY_S = 5.0


class _LeanBookkeeping(SimpleWorker):
    """RQ's per-job bookkeeping without the writes that repeat what Redis already holds.

    RQ writes the worker's stand-alone heartbeat and its state around every job, and asks Redis about
    `rq suspend` before every job: round trips that keep a key alive or repeat what it already holds,
    and a measurable share of the worker's CPU (reference-docs/architecture.md, "Performance").
    Heartbeats that are part of a job's own pipeline (its start and end) are untouched, so the job and
    execution keys behave as in RQ; `rq suspend` is seen within a second.
    """

    _last_beat: tuple[float, int | None] | None = None
    _written_state: str | None = None
    _suspension_checked_at: float | None = None
    #: Told of a warm shutdown before RQ waits for the jobs under way: long jobs (drainers) end sooner.
    on_stop: Callable[[], None] | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.on_stop is not None:
            self.on_stop()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def subscribe(self) -> None:
        """RQ's subscription to its command channel, with the listener waking every second, not every minute.

        At a warm shutdown RQ unsubscribes, then stops the listener thread. Since redis-py 8.2, that stop
        waits for the thread, and a thread that has already seen the unsubscribe waits a whole
        `sleep_time` for a new subscription before it looks again. With RQ's 60 s, a worker process that
        had finished its work outlived the supervisor's 30 s grace and was killed.
        """
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ types it None
            sleep_time=_LISTENER_WAKE_S, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def check_for_suspension(self, burst: bool) -> None:
        checked = self._suspension_checked_at
        if checked is not None and time.monotonic() - checked < _SUSPENSION_CHECK_EVERY_S:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is None:
            beat = self._last_beat
            if beat is not None and beat[1] == timeout and time.monotonic() - beat[0] < _HEARTBEAT_EVERY_S:
                return
            self._last_beat = (time.monotonic(), timeout)
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self._written_state:
            self._state = state
            return
        self._written_state = state if pipeline is None else None
        super().set_state(state, pipeline)


class InProcessWorker(_LeanBookkeeping):
    """Runs each job in the worker process: no fork and no cold process per job.

    Every log line written while a job runs carries the job id and the message's correlation id.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        correlation_id = job.kwargs.get("correlation_id")
        with structlog.contextvars.bound_contextvars(job_id=job.id, correlation_id=correlation_id):
            super().execute_job(job, queue)


class ConcurrentWorker(_LeanBookkeeping):
    """Runs up to `threads` jobs at once on a thread pool; dequeues only while a thread is free.

    RQ 3 keeps one Execution per running job, so the registries stay right with several at once.
    Job timeouts use RQ's timer-based death penalty: the SIGALRM one only works in the main thread.
    On a warm shutdown the jobs under way finish before the worker unregisters.
    """

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args: object, threads: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._free = threading.BoundedSemaphore(threads)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="job")

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._free.acquire()
        submitted = False
        try:
            execution = self.prepare_execution(job)
            self._pool.submit(self._perform, job, queue, execution)
            submitted = True
        finally:
            if not submitted:
                self._free.release()

    def _perform(self, job: Job, queue: Queue, execution: object) -> None:
        try:
            correlation_id = job.kwargs.get("correlation_id")
            with structlog.contextvars.bound_contextvars(job_id=job.id, correlation_id=correlation_id):
                self.perform_job(job, queue, execution)  # type: ignore[arg-type]
        finally:
            self._free.release()

    def _shutdown(self) -> None:
        # The main thread only dequeues: stop it at once (RQ would otherwise let it block on the queue
        # for minutes while "busy"); the jobs under way finish in teardown before the worker unregisters.
        raise StopRequested()

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)
        super().teardown()  # type: ignore[no-untyped-call]


def run_rq_worker(
    redis_url: str,
    queue_name: str,
    *,
    on_start: Callable[[], None] | None,
    burst: bool = False,
    maintenance_interval_s: int = 60,
    threads: int = 1,
    on_stop: Callable[[], None] | None = None,
    io_counts: IoCounts | None = None,
) -> None:
    """Work on `queue_name` until SIGTERM/SIGINT (the jobs under way finish first) or, in burst mode, until empty.

    `on_start` runs once, in this process, before the first job: the place to build the container, so
    that pools and clients are opened after the supervisor forked. `on_stop` runs when a warm shutdown is
    asked for, before the jobs under way are waited for. Maintenance (freeing the registries of
    workers that died) runs every `maintenance_interval_s` instead of RQ's 10 minutes. With `io_counts`,
    RQ's own round trips (dequeue, job bookkeeping) are counted there too (IO_COUNTS).
    """
    if on_start is not None:
        on_start()
    connection = redis_client(redis_url, socket_timeout_s=_WORKER_SOCKET_TIMEOUT_S, io_counts=io_counts)
    worker: SimpleWorker
    if threads > 1:
        worker = ConcurrentWorker(
            [queue_name], connection=connection, maintenance_interval=maintenance_interval_s, threads=threads
        )
    else:
        worker = InProcessWorker([queue_name], connection=connection, maintenance_interval=maintenance_interval_s)
    worker.on_stop = on_stop
    worker.work(burst=burst)
