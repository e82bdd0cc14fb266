"""A customer's message arrives: store it durably, once, and ask a worker to answer it."""

from __future__ import annotations

import enum
import logging

from attrs import frozen

from application.ports.pipeline import MessageNotStorable, MessageStore
from application.ports.repositories import StorageUnavailable
from application.ports.services import Clock, JobQueue, QueueUnavailable
from application.routes import ChannelRoutes
from application.use_cases.reject_delivery import RejectDelivery, Rejection
from domain.messages import InboundMessage, OrderingScope

log = logging.getLogger(__name__)

#: Reads of a channel's route before giving up: each relink racing the message costs one.
_ROUTE_READS = 5


@frozen
class HandleInbound:
    message: InboundMessage
    correlation_id: str | None = None
    #: The request body the message came in, kept with the message if it is rejected.
    delivery: bytes = b""


class InboundOutcome(enum.StrEnum):
    QUEUED = "queued"  # stored and a worker was asked to answer it
    STORED = "stored"  # stored; the queue was down, the recovery sweep will pick it up
    SKIPPED = "skipped"  # stored, not to be answered (type we do not answer)
    DUPLICATE = "duplicate"  # seen before: nothing stored again
    UNKNOWN_CHANNEL = "unknown_channel"  # no channel has that id: ignored
    NO_AGENT = "no_agent"  # the channel has no agent linked: ignored
    CHANNEL_DELETED = "channel_deleted"  # the tenant deleted the channel: ignored
    REJECTED = "rejected"  # cannot be stored (what it holds): kept with its delivery in the rejected deliveries


class HandleInboundMessage:
    def __init__(
        self,
        messages: MessageStore,
        routes: ChannelRoutes,
        queue: JobQueue,
        clock: Clock,
        reject: RejectDelivery,
        ordering: OrderingScope,
    ) -> None:
        self._messages = messages
        self._routes = routes
        self._queue = queue
        self._clock = clock
        self._reject = reject
        self._ordering = ordering

    def __call__(self, command: HandleInbound) -> InboundOutcome:
        message = command.message
        route = self._routes.find(message.phone_number_id)
        if route is None:
            log.info("inbound_ignored", extra={"reason": "unknown_channel", "phone_number_id": message.phone_number_id})
            return InboundOutcome.UNKNOWN_CHANNEL
        try:
            for _ in range(_ROUTE_READS):
                if route.channel.deleted:
                    log.info(
                        "inbound_ignored",
                        extra={"reason": "channel_deleted", "phone_number_id": message.phone_number_id},
                    )
                    return InboundOutcome.CHANNEL_DELETED
                if route.agent is None:
                    log.info(
                        "inbound_ignored", extra={"reason": "no_agent", "phone_number_id": message.phone_number_id}
                    )
                    return InboundOutcome.NO_AGENT
                recorded = self._messages.record_inbound(route, message, self._clock.now())
                if recorded is not None:
                    break
                # The route was read before a relink: the agent no longer holds the channel.
                self._routes.forget(message.phone_number_id)
                route = self._routes.find(message.phone_number_id)
                if route is None:
                    return InboundOutcome.UNKNOWN_CHANNEL
            else:
                # Relinks faster than a message can be stored: nothing was stored, and Meta redelivers a 503.
                raise StorageUnavailable(f"the route of channel {message.phone_number_id} kept changing")
        except MessageNotStorable as refused:
            # The message's own fault: answering 5xx would have Meta redeliver it, and the rest of its
            # delivery, for days. The database is fine (StorageUnavailable is not caught): keep it aside.
            self._reject(
                Rejection(
                    f"not_storable: {refused.reason}",
                    command.delivery,
                    message.phone_number_id,
                    message.platform_message_id,
                    command.correlation_id,
                )
            )
            return InboundOutcome.REJECTED

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
