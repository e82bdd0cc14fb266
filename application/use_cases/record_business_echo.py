"""The business wrote to a customer from its own app (WhatsApp Business app in coexistence, the Instagram
app): the channel echoes the message to us. It is stored once as a person's reply in the customer's
conversation, and the bot of that conversation pauses, so the AI does not talk over the person.

Instagram echoes our own sends as well. One already stored under its platform id is a duplicate; one
that comes before the worker stored that id is known by being the very text of a part we are sending to
that customer right now, and is left alone: the part is stored already, and it is not a person's reply."""

from __future__ import annotations

import enum
import logging

from attrs import frozen

from application.ports.pipeline import MessageNotStorable, MessageStore
from application.ports.services import Clock
from application.routes import ChannelRoutes
from application.use_cases.reject_delivery import RejectDelivery, Rejection
from domain.messages import BusinessEcho

log = logging.getLogger(__name__)


@frozen
class RecordEcho:
    echo: BusinessEcho
    correlation_id: str | None = None
    #: The request body the echo came in, kept with it if it is rejected.
    delivery: bytes = b""


class EchoOutcome(enum.StrEnum):
    STORED = "echo_stored"
    DUPLICATE = "echo_duplicate"
    OWN_SEND = "echo_own_send"
    UNKNOWN_CHANNEL = "echo_unknown_channel"
    NO_AGENT = "echo_no_agent"
    REJECTED = "echo_rejected"


class RecordBusinessEcho:
    def __init__(self, messages: MessageStore, routes: ChannelRoutes, clock: Clock, reject: RejectDelivery) -> None:
        self._messages = messages
        self._routes = routes
        self._clock = clock
        self._reject = reject

    def __call__(self, command: RecordEcho) -> EchoOutcome:
        echo = command.echo
        route = self._routes.find(echo.phone_number_id)
        if route is None or route.agent is None:
            reason = "unknown_channel" if route is None else "no_agent"
            log.info("echo_ignored", extra={"reason": reason, "phone_number_id": echo.phone_number_id})
            return EchoOutcome.UNKNOWN_CHANNEL if route is None else EchoOutcome.NO_AGENT
        try:
            recorded = self._messages.record_echo(route, echo, self._clock.now())
        except MessageNotStorable as refused:
            self._reject(
                Rejection(
                    f"not_storable: {refused.reason}",
                    command.delivery,
                    echo.phone_number_id,
                    echo.platform_message_id,
                    command.correlation_id,
                )
            )
            return EchoOutcome.REJECTED
        if recorded is None:
            log.info(
                "echo_ignored",
                extra={
                    "reason": "own_send_in_flight",
                    "phone_number_id": echo.phone_number_id,
                    "platform_message_id": echo.platform_message_id,
                },
            )
            return EchoOutcome.OWN_SEND
        if recorded.duplicate:
            return EchoOutcome.DUPLICATE
        log.info(
            "echo_recorded", extra={"conversation_id": recorded.conversation_id, "message_id": recorded.message_id}
        )
        return EchoOutcome.STORED
