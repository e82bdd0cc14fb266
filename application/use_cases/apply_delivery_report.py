"""The channel reports what became of one of our replies (sent, delivered, read, failed)."""

from __future__ import annotations

import logging

from application.ports.pipeline import MessageStore
from application.ports.services import Clock
from domain.messages import DeliveryReport

log = logging.getLogger(__name__)

#: Reports about one message racing each other: each attempt sees the winner's save and decides again.
_ATTEMPTS = 5


class ApplyDeliveryReport:
    def __init__(self, messages: MessageStore, clock: Clock) -> None:
        self._messages = messages
        self._clock = clock

    def __call__(self, report: DeliveryReport) -> bool:
        """True when the report named one of our outbound messages."""
        for _ in range(_ATTEMPTS):
            message = self._messages.outbound(report.phone_number_id, report.platform_message_id)
            if message is None:
                return False
            changed = message.report(report, self._clock.now())
            if changed is None or self._messages.save_report(message, changed):
                return True
        log.warning("delivery_report_dropped", extra={"platform_message_id": report.platform_message_id})
        return True
