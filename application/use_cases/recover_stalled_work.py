"""The recovery sweep: find work that was stored but is not moving, and queue it again.

It covers what the webhook's enqueue cannot: a trigger lost with an emptied Redis, a worker
killed mid-turn (its lock expires), a job that failed because Postgres or OpenAI was briefly
down. Queuing a scope twice is harmless, so the sweep needs no coordination to be correct; a
leader lock only keeps it from being done needlessly by every worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from application.ports.pipeline import TurnStore
from application.ports.services import Clock, JobQueue, Locks
from domain.messages import OrderingScope

log = logging.getLogger(__name__)


class RecoverStalledWork:
    def __init__(
        self,
        turns: TurnStore,
        queue: JobQueue,
        locks: Locks,
        clock: Clock,
        ordering: OrderingScope,
        stalled_after: timedelta,
        batch_size: int = 500,
    ) -> None:
        self._turns = turns
        self._queue = queue
        self._locks = locks
        self._clock = clock
        self._ordering = ordering
        self._stalled_after = stalled_after
        self._batch_size = batch_size

    def __call__(self) -> int:
        """Queue every stalled scope nobody is working on; returns how many were queued."""
        scopes = self._turns.stalled_scopes(self._ordering, self._clock.now() - self._stalled_after, self._batch_size)
        queued = 0
        for scope in scopes:
            if self._locks.is_held(str(scope)):
                continue
            # Forced: a "job waiting" mark may outlive its job (a worker died holding it).
            self._queue.enqueue_scope(str(scope), force=True)
            queued += 1
        if queued:
            log.info("stalled_work_requeued", extra={"scopes": queued})
        return queued
