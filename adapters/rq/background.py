"""`BackgroundJobs` on RQ: extractions and webhook deliveries, on a queue of their own.

Their own queue, served by their own worker process (`mcagent worker`), so a slow receiver or an
extraction waiting for OpenAI never holds a thread that a reply needs. Like the replies' jobs, these
carry ids only and are safe to run twice; a lost job is found again by the sweep when its claim runs out.
"""

from __future__ import annotations

import redis
from rq import Queue

from adapters.rq.queue import FAILURE_TTL
from application.ports.services import QueueUnavailable

EXTRACTION_JOB = "entrypoints.worker.jobs.extract_lead"
WEBHOOK_JOB = "entrypoints.worker.jobs.deliver_webhook"


def background_queue_name(queue_name: str) -> str:
    return f"{queue_name}-background"


class RqBackgroundJobs:
    def __init__(self, connection: redis.Redis, queue_name: str, job_timeout_s: int) -> None:
        self._queue = Queue(background_queue_name(queue_name), connection=connection)
        self._connection = connection
        self._job_timeout_s = job_timeout_s

    def enqueue_extraction(self, conversation_id: int) -> None:
        self._enqueue(EXTRACTION_JOB, conversation_id)

    def enqueue_webhook(self, delivery_id: int) -> None:
        self._enqueue(WEBHOOK_JOB, delivery_id)

    def _enqueue(self, function: str, entity_id: int) -> None:
        try:
            with self._connection.pipeline() as pipeline:
                self._queue.enqueue_call(
                    function,
                    args=(entity_id,),
                    timeout=self._job_timeout_s,
                    result_ttl=0,
                    failure_ttl=int(FAILURE_TTL.total_seconds()),
                    pipeline=pipeline,
                )
                pipeline.execute()
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not enqueue {function}({entity_id}): {error}") from error

    def queue_depth(self) -> int:
        try:
            return self._queue.count
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not read the background queue's length: {error}") from error
