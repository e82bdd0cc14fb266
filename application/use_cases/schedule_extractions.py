"""Find the conversations due for extraction and hand each to one background worker.

The database finds them (`LeadActivity.is_due`) and marks each claimed in the same statement, so two
sweepers — on two hosts, or one that lost its leadership — never queue the same extraction; a claim
whose job was lost runs out and the conversation is due again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from application.ports.leads import BackgroundJobs
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, QueueUnavailable
from domain.extraction import CLAIM_FOR, quiet_before

log = logging.getLogger(__name__)

#: Conversations queued per sweep; the rest are due at the next one.
BATCH = 500


class ScheduleExtractions:
    def __init__(
        self, uow: Callable[[], UnitOfWork], jobs: BackgroundJobs, clock: Clock, *, interval: timedelta
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._clock = clock
        self._interval = interval

    def __call__(self) -> int:
        now = self._clock.now()
        with self._uow() as uow:
            due = uow.extractions.claim_due(quiet_before(now, self._interval), now, now + CLAIM_FOR, BATCH)
            uow.commit()
        for queued, conversation_id in enumerate(due):
            try:
                self._jobs.enqueue_extraction(conversation_id)
            except QueueUnavailable:
                log.warning("extractions_not_queued", extra={"count": len(due) - queued})
                return queued
        if due:
            log.info("extractions_queued", extra={"count": len(due)})
        return len(due)
