"""`JobQueue` on RQ: one job per trigger of an ordering scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from rq import Queue

from application.ports.services import QueueUnavailable

#: Failed jobs are kept a week for troubleshooting (RQ's default is a year of Redis memory).
FAILURE_TTL = timedelta(days=7)

#: How long "a job for this scope is waiting" is believed without the job starting. Past it a new
#: trigger enqueues again: a lost marker costs at most one duplicate job, never a missed message.
WAITING_MARK_TTL_S = 120


class RqJobQueue:
    """Enqueues `job_function(scope_key, correlation_id=…)` by its dotted path.

    No job `ttl` and no RQ `Retry`: ordering comes from the scope lock and the state in Postgres, so a
    trigger that runs late, twice or after a newer one is harmless, while a retry scheduled by RQ would
    only add noise. Results are not kept (result_ttl=0): the job's effects are in Postgres, and kept
    results would hold Redis memory for every job run (figure: reference-docs/architecture.md).
    """

    def __init__(self, connection: redis.Redis, queue_name: str, job_function: str, job_timeout_s: int) -> None:
        self._queue = Queue(queue_name, connection=connection)
        self._connection = connection
        self._waiting_prefix = f"mcagent:waiting:{queue_name}:"
        self._job_function = job_function
        self._job_timeout_s = job_timeout_s

    def enqueue_scope(self, scope_key: str, *, correlation_id: str | None = None, force: bool = False) -> None:
        try:
            # One Redis command decides whether a job already waits for this scope; an RQ enqueue is
            # several, and every extra job costs a worker RQ's whole per-job bookkeeping for nothing.
            if not force and not self._connection.set(
                self._waiting_prefix + scope_key, b"1", nx=True, ex=WAITING_MARK_TTL_S
            ):
                return
            # RQ sends its queue registration and the job in two round trips; on our pipeline, one.
            with self._connection.pipeline() as pipeline:
                self._queue.enqueue_call(
                    self._job_function,
                    args=(scope_key,),
                    kwargs={"correlation_id": correlation_id},
                    timeout=self._job_timeout_s,
                    result_ttl=0,
                    failure_ttl=int(FAILURE_TTL.total_seconds()),
                    pipeline=pipeline,
                )
                pipeline.execute()
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not enqueue {scope_key}: {error}") from error

    def taken(self, scope_key: str) -> None:
        try:
            self._connection.delete(self._waiting_prefix + scope_key)
        except redis.RedisError as error:
            # The marker expires by itself; until then new work for the scope waits for the sweep.
            raise QueueUnavailable(f"could not clear the waiting mark of {scope_key}: {error}") from error

    def queue_depth(self) -> int:
        """Jobs waiting to be taken by a worker. Raises QueueUnavailable."""
        try:
            return self._queue.count
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not read the queue length: {error}") from error

    def oldest_job_age_s(self) -> float | None:
        """Seconds the next job has waited, None when the queue is empty. Raises QueueUnavailable."""
        try:
            head = self._queue.get_jobs(0, 1)
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not read the queue: {error}") from error
        if not head or head[0].enqueued_at is None:
            return None
        return (datetime.now(UTC) - head[0].enqueued_at).total_seconds()
