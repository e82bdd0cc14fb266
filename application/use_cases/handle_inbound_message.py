"""A customer's message arrives: store it durably, once, and ask a worker to answer it."""

from __future__ import annotations

import enum
import logging

from attrs import frozen

from application.ports.pipeline import MessageStore
from application.ports.services import Clock, JobQueue, QueueUnavailable
from application.routes import ChannelRoutes
from domain.messages import InboundMessage, OrderingScope

log = logging.getLogger(__name__)


@frozen
class HandleInbound:
    message: InboundMessage
    correlation_id: str | None = None


class InboundOutcome(enum.StrEnum):
    QUEUED = "queued"  # stored and a worker was asked to answer it
    STORED = "stored"  # stored; the queue was down, the recovery sweep will pick it up
    SKIPPED = "skipped"  # stored, not to be answered (type we do not answer)
    DUPLICATE = "duplicate"  # seen before: nothing stored again
    UNKNOWN_CHANNEL = "unknown_channel"  # no channel has that id: ignored
    NO_AGENT = "no_agent"  # the channel has no agent linked: ignored


class HandleInboundMessage:
    def __init__(
        self,
        messages: MessageStore,
        routes: ChannelRoutes,
        queue: JobQueue,
        clock: Clock,
        ordering: OrderingScope,
    ) -> None:
        self._messages = messages
        self._routes = routes
        self._queue = queue
        self._clock = clock
        self._ordering = ordering

    def __call__(self, command: HandleInbound) -> InboundOutcome:
        message = command.message
        route = self._routes.find(message.phone_number_id)
        if route is None:
            log.info("inbound_ignored", extra={"reason": "unknown_channel", "phone_number_id": message.phone_number_id})
            return InboundOutcome.UNKNOWN_CHANNEL
        if route.agent is None:
            log.info("inbound_ignored", extra={"reason": "no_agent", "phone_number_id": message.phone_number_id})
            return InboundOutcome.NO_AGENT

        recorded = self._messages.record_inbound(route, message, self._clock.now())

        if not message.answerable:
            return InboundOutcome.DUPLICATE if recorded.duplicate else InboundOutcome.SKIPPED
        # A duplicate is queued again too: the first delivery may have been stored by a request
        # that died before it could enqueue. An extra trigger is harmless; a missing one delays.
        scope = self._ordering.key(conversation_id=recorded.conversation_id, phone_number_id=message.phone_number_id)
        try:
            self._queue.enqueue_scope(scope, correlation_id=command.correlation_id)
        except QueueUnavailable:
            log.warning("enqueue_failed", extra={"scope": scope, "message_id": recorded.message_id})
            return InboundOutcome.DUPLICATE if recorded.duplicate else InboundOutcome.STORED
        return InboundOutcome.DUPLICATE if recorded.duplicate else InboundOutcome.QUEUED
