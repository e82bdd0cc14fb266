"""Part of the recovery sweep: a conversation whose timed pause has run out resumes by itself, and the AI
answers what it held meanwhile."""

from __future__ import annotations

import logging
from collections.abc import Callable

from application.held_messages import queue_released, release_if_answering
from application.ports.pipeline import TurnStore
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from domain.channels import BotState
from domain.messages import OrderingScope

log = logging.getLogger(__name__)


class ResumeEndedPauses:
    def __init__(
        self,
        turns: TurnStore,
        uow: Callable[[], UnitOfWork],
        queue: JobQueue,
        clock: Clock,
        ordering: OrderingScope,
        batch_size: int = 100,
    ) -> None:
        self._turns = turns
        self._uow = uow
        self._queue = queue
        self._clock = clock
        self._ordering = ordering
        self._batch_size = batch_size

    def __call__(self) -> int:
        """Resume every conversation whose timed pause ran out; returns how many resumed."""
        now = self._clock.now()
        resumed_count = 0
        for user_id, conversation_id in self._turns.pauses_run_out(now, self._batch_size):
            with self._uow() as uow:
                conversation = uow.conversations.lock(user_id, conversation_id)
                if conversation is None or not conversation.paused_run_out(now):
                    continue  # resumed, or paused again, meanwhile
                channel = uow.channels.get(user_id, conversation.phone_number_id)
                channel_bot = BotState.ACTIVE if channel is None else channel.bot
                active = conversation.resume()
                uow.conversations.save_bot(active)
                resumed = release_if_answering(uow, active, channel_bot, now)
                uow.commit()
            queue_released(self._queue, self._ordering, resumed)
            resumed_count += 1
        if resumed_count:
            log.info("timed_pauses_resumed", extra={"conversations": resumed_count})
        return resumed_count
