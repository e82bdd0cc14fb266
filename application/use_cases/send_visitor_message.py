"""A visitor writes in the widget: the message goes through the same pipeline as a WhatsApp or Instagram one."""

from __future__ import annotations

from attrs import field, frozen

from application.ports.pipeline import MessageStore
from application.ports.services import Clock
from application.ports.webchat import RateLimits, Signal, VisitorSignals
from application.use_cases.handle_inbound_message import HandleInbound, HandleInboundMessage, InboundOutcome
from application.webchat_access import WidgetAccess
from domain.errors import Conflict, NotFound, RateLimited, ValidationFailed
from domain.messages import Message
from domain.webchat import check_visitor_text, visitor_message


@frozen
class SendVisitorMessageCommand:
    widget_id: str
    origin: str | None
    token: str | None = field(repr=False)
    text: object
    client_message_id: object
    correlation_id: str | None = None


@frozen
class VisitorMessageSent:
    message: Message
    #: The browser sent this message before (a retry): nothing new was stored.
    duplicate: bool


class SendVisitorMessage:
    def __init__(
        self,
        access: WidgetAccess,
        handle_inbound: HandleInboundMessage,
        messages: MessageStore,
        rate_limits: RateLimits,
        signals: VisitorSignals,
        clock: Clock,
        *,
        visitor_per_minute: int,
        widget_per_minute: int,
    ) -> None:
        self._access = access
        self._handle_inbound = handle_inbound
        self._messages = messages
        self._rate_limits = rate_limits
        self._signals = signals
        self._clock = clock
        self._visitor_per_minute = visitor_per_minute
        self._widget_per_minute = widget_per_minute

    def __call__(self, command: SendVisitorMessageCommand) -> VisitorMessageSent:
        route, session = self._access.visitor(command.widget_id, command.origin, command.token)
        text = check_visitor_text(command.text)
        inbound = visitor_message(session, text, command.client_message_id, self._clock.now())
        sent_before = self._messages.inbound(session.widget_id, inbound.platform_message_id)
        if sent_before is not None:  # a retry of a message we have: no new message, and no count against a limit
            return VisitorMessageSent(message=sent_before, duplicate=True)
        for key, per_minute in (
            (f"visitor:{session.widget_id}:{session.visitor_id}", self._visitor_per_minute),
            (f"widget:{session.widget_id}", self._widget_per_minute),
        ):
            wait = self._rate_limits.hit(key, per_minute)
            if wait is not None:
                raise RateLimited("too many messages; wait a moment and send again", retry_after_s=wait)
        if route.agent is None:
            # Stored nowhere, answered by nobody: say so, rather than take a message into a void.
            raise Conflict("this chat has no agent to answer it yet")
        outcome = self._handle_inbound(HandleInbound(inbound, command.correlation_id))
        if outcome in (InboundOutcome.UNKNOWN_CHANNEL, InboundOutcome.CHANNEL_DELETED):
            raise NotFound(f"web chat widget {session.widget_id} not found")
        if outcome is InboundOutcome.NO_AGENT:
            raise Conflict("this chat has no agent to answer it yet")
        stored = self._messages.inbound(session.widget_id, inbound.platform_message_id)
        if stored is None:  # REJECTED: the text was checked, so only a bound we did not foresee
            raise ValidationFailed("the message could not be stored", field="text")
        # The visitor's other tabs show it too.
        self._signals.notify(session.widget_id, session.visitor_id, Signal.MESSAGE)
        return VisitorMessageSent(message=stored, duplicate=outcome is InboundOutcome.DUPLICATE)
