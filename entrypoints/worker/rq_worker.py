"""One RQ worker process: takes scope jobs from the queue and runs them in this process."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from rq import Queue
from rq.job import Job
from rq.worker import SimpleWorker

from adapters.redis.client import redis_client

#: RQ raises the socket timeout of its own connection to cover its blocking dequeue; this bounds the rest.
_WORKER_SOCKET_TIMEOUT_S = 10.0


class InProcessWorker(SimpleWorker):
    """Runs each job in the worker process: no fork per job (about 12 ms each, and a cold interpreter).

    Every log line written while a job runs carries the job id and the message's correlation id.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        correlation_id = job.kwargs.get("correlation_id")
        with structlog.contextvars.bound_contextvars(job_id=job.id, correlation_id=correlation_id):
            super().execute_job(job, queue)


def run_rq_worker(
    redis_url: str,
    queue_name: str,
    *,
    on_start: Callable[[], None] | None,
    burst: bool = False,
    maintenance_interval_s: int = 60,
) -> None:
    """Work on `queue_name` until SIGTERM/SIGINT (the job under way finishes first) or, in burst mode, until empty.

    `on_start` runs once, in this process, before the first job: the place to build the container, so
    that pools and clients are opened after the supervisor forked. Maintenance (freeing the registries of
    workers that died) runs every `maintenance_interval_s` instead of RQ's 10 minutes.
    """
    if on_start is not None:
        on_start()
    connection = redis_client(redis_url, socket_timeout_s=_WORKER_SOCKET_TIMEOUT_S)
    worker = InProcessWorker([queue_name], connection=connection, maintenance_interval=maintenance_interval_s)
    worker.work(burst=burst)
