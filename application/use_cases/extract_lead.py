"""Read one conversation for its lead data, keep the reading, and tell the business what changed.

Runs as a background job, never on the replies' queue. A conversation is extracted by one worker at a
time (a lock), from our own database (so a relinked conversation and the business's own replies are
read too), and the reading is stored once per message it goes up to, however often the job runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from attrs import frozen

from application.notifying import Notifier, ScheduleWebhookDeliveries
from application.ports.leads import ExtractionFailed, ExtractionRequest, LeadExtractor
from application.ports.repositories import UnitOfWork
from application.ports.services import BalanceCache, Clock, Locks
from domain.credits import CreditMovement
from domain.extraction import BUILT_IN_INSTRUCTIONS, Extraction, LeadActivity, LeadFields, lead_events, transcript_text
from domain.notifications import from_extraction

log = logging.getLogger(__name__)


@frozen
class ExtractLeadCommand:
    conversation_id: int


@frozen
class _Reading:
    activity: LeadActivity
    request: ExtractionRequest
    price: int


class ExtractLead:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        extractor: LeadExtractor,
        locks: Locks,
        notifier: Notifier,
        deliveries: ScheduleWebhookDeliveries,
        balances: BalanceCache,
        clock: Clock,
        *,
        credits_per_extraction: int = 0,
    ) -> None:
        self._uow = uow
        self._extractor = extractor
        self._locks = locks
        self._notifier = notifier
        self._deliveries = deliveries
        self._balances = balances
        self._clock = clock
        self._price = credits_per_extraction

    def __call__(self, command: ExtractLeadCommand) -> Extraction | None:
        """The stored reading; None when there was nothing to read, another worker had it, or it failed."""
        handle = self._locks.acquire(f"extract:{command.conversation_id}")
        if handle is None:
            return None  # another worker reads this conversation now
        try:
            reading = self._prepare(command.conversation_id)
            if reading is None:
                return None
            try:
                answer = self._extractor.extract(reading.request)
            except ExtractionFailed as failure:
                self._failed(reading.activity, failure.reason, retryable=failure.retryable)
                return None
            fields = LeadFields.from_answer(answer.fields, written_at=reading.activity.last_message_at)
            return self._keep(reading, fields, answer.response_id, answer.input_tokens, answer.output_tokens)
        finally:
            handle.release()

    def _prepare(self, conversation_id: int) -> _Reading | None:
        with self._uow() as uow:
            activity = uow.extractions.activity(conversation_id)
            if activity is None or not activity.has_new_messages:
                return None
            if self._price and not uow.credits.get(activity.user_id).can_pay(self._price):
                uow.extractions.save_activity(
                    activity.failed(
                        "insufficient_credits", self._clock.now(), retryable=True, through=activity.last_sequence_no
                    )
                )
                uow.commit()
                log.warning("extraction_refused", extra={"conversation_id": conversation_id, "reason": "credits"})
                return None
            lines = uow.extractions.transcript(conversation_id, activity.last_sequence_no)
            agent = uow.agents.get(activity.user_id, activity.agent_id)
        prompt_id = agent.extraction_prompt_id if agent is not None else None
        request = ExtractionRequest(
            instructions=BUILT_IN_INSTRUCTIONS,
            transcript=transcript_text(lines),
            prompt_id=prompt_id,
            metadata={"user_id": activity.user_id, "conversation_id": str(conversation_id)},
        )
        return _Reading(activity, request, self._price)

    def _keep(
        self,
        reading: _Reading,
        fields: LeadFields,
        response_id: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> Extraction | None:
        before = reading.activity
        now = self._clock.now()
        with self._uow() as uow:
            activity = uow.extractions.activity(before.conversation_id)
            if activity is None or activity.extracted_through >= before.last_sequence_no:
                return None  # read up to here already (a job that ran twice)
            charged = reading.price if reading.price and uow.credits.get(before.user_id).can_pay(reading.price) else 0
            previous = uow.extractions.latest(before.conversation_id)
            extraction = uow.extractions.add(
                Extraction(
                    None,
                    before.user_id,
                    before.conversation_id,
                    before.phone_number_id,
                    before.last_sequence_no,
                    fields,
                    now,
                    credits_charged=charged,
                    response_id=response_id,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            )
            if extraction is None:
                return None
            assert extraction.extraction_id is not None
            if charged:
                uow.credits.record(
                    CreditMovement.charge_extraction(before.user_id, charged, extraction.extraction_id), now
                )
            settings = uow.notifications.settings(before.user_id)
            events = lead_events(previous.fields if previous else None, fields, settings.hot_lead)
            told = self._notifier.notify(uow, from_extraction(previous, extraction, settings, events), now)
            uow.extractions.save_activity(activity.extracted(before.last_sequence_no))
            uow.commit()
        if charged:
            self._balances.invalidate(before.user_id)
        if told:
            self._deliveries()
        log.info(
            "lead_extracted",
            extra={
                "conversation_id": before.conversation_id,
                "extraction_id": extraction.extraction_id,
                "missing": sorted(fields.missing),
                "notifications": told,
            },
        )
        return extraction

    def _failed(self, read: LeadActivity, reason: str, *, retryable: bool) -> None:
        with self._uow() as uow:
            activity = uow.extractions.activity(read.conversation_id)
            if activity is None:
                return
            now = self._clock.now()
            uow.extractions.save_activity(
                activity.failed(reason, now, retryable=retryable, through=read.last_sequence_no)
            )
            uow.commit()
        log.warning("extraction_failed", extra={"conversation_id": read.conversation_id, "reason": reason})
