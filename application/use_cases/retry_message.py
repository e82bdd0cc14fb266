"""Another chance for a failed message, on a tenant's request: a customer's message is answered after
all, in the conversation's order; a reply part the channel refused is sent once more, now (a person's
part within the channel's human window, with the human-agent tag past the service window)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from attrs import frozen

from application.ports.pipeline import MessageStore, TurnStore
from application.ports.repositories import UnitOfWork
from application.ports.services import ChannelSenders, Clock, DeliveryFailed, JobQueue, QueueUnavailable
from application.routes import ChannelRoutes
from domain.conversations import Conversation
from domain.errors import NotFound, RetryRefused
from domain.messages import Direction, Message, MessageStatus, OrderingScope, ScopeKey
from domain.tenancy import Route
from domain.turns import CHANNEL_UNAVAILABLE, PartChange

log = logging.getLogger(__name__)


@frozen
class RetryMessageCommand:
    user_id: str
    message_id: int
    correlation_id: str | None = None


@frozen
class RetryOutcome:
    """The message as it is now; `retried` False when it was not failed, so nothing was done."""

    message: Message
    retried: bool


class RetryMessage:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        messages: MessageStore,
        turns: TurnStore,
        routes: ChannelRoutes,
        senders: ChannelSenders,
        queue: JobQueue,
        clock: Clock,
        *,
        ordering: OrderingScope,
    ) -> None:
        self._uow = uow
        self._messages = messages
        self._turns = turns
        self._routes = routes
        self._senders = senders
        self._queue = queue
        self._clock = clock
        self._ordering = ordering

    def __call__(self, command: RetryMessageCommand) -> RetryOutcome:
        message, conversation = self._load(command)
        route = self._routes.find(message.phone_number_id)
        policy = None if route is None else route.channel.policy
        has_agent = route is not None and route.agent is not None
        retried = conversation.retry(
            message, policy, self._clock.now(), has_agent=has_agent, open_turn_id=self._open_turn_id(message)
        )
        if retried is None:
            return RetryOutcome(message, retried=False)
        if retried.direction is Direction.OUTBOUND:
            assert route is not None  # a reply part is only retried on a channel that is there
            if not self._senders.available(route.channel.type):
                raise RetryRefused(CHANNEL_UNAVAILABLE, "the channel's platform is unavailable now; try again later")
        if not self._messages.save_retry(message, retried):
            # Retried (or changed) meanwhile by someone else: this request does nothing more.
            current, _ = self._load(command)
            return RetryOutcome(current, retried=False)
        log.info("message_retried", extra={"message_id": message.message_id, "direction": str(message.direction)})
        if retried.direction is Direction.INBOUND:
            self._enqueue(retried, command.correlation_id)
            return RetryOutcome(retried, retried=True)
        assert route is not None
        return RetryOutcome(self._send_again(retried, conversation, route), retried=True)

    def _load(self, command: RetryMessageCommand) -> tuple[Message, Conversation]:
        with self._uow() as uow:
            message = uow.messages.get(command.user_id, command.message_id)
            conversation = None if message is None else uow.conversations.get(message.conversation_id)
        if message is None or conversation is None:
            raise NotFound(f"message {command.message_id} not found")
        return message, conversation

    def _open_turn_id(self, message: Message) -> int | None:
        """The turn a worker is answering the message's ordering scope with (one at a time), if any; only a
        reply part needs to know."""
        if message.direction is not Direction.OUTBOUND or message.status is not MessageStatus.FAILED:
            return None
        scope = self._ordering.key(conversation_id=message.conversation_id, phone_number_id=message.phone_number_id)
        work = self._turns.next_work(ScopeKey.parse(scope))
        return None if work is None or work.turn is None else work.turn.turn_id

    def _enqueue(self, message: Message, correlation_id: str | None) -> None:
        """The worker answers it in the conversation's order, with any other pending message of it."""
        scope = self._ordering.key(conversation_id=message.conversation_id, phone_number_id=message.phone_number_id)
        try:
            self._queue.enqueue_scope(scope, correlation_id=correlation_id)
        except QueueUnavailable:
            # Stored as received: the recovery sweep queues it later.
            log.warning("enqueue_failed", extra={"scope": scope, "message_id": message.message_id})

    def _send_again(self, part: Message, conversation: Conversation, route: Route) -> Message:
        """The one more send attempt of a part the retry claimed: sent, or failed with the channel's code.
        A person's part past the service window goes with the platform's human-agent tag, judged at the
        send. A refusal the channel asks to be tried again later fails it too (nothing went out): the
        tenant may retry it again, which a part left pending in a finished turn would never be."""
        human_agent = conversation.needs_human_tag(part, route.channel.policy, self._clock.now())
        try:
            sender = self._senders.for_type(route.channel.type)
            platform_message_id = sender.send_text(
                route.channel, conversation.customer_id, part.text or "", human_agent=human_agent
            )
        except DeliveryFailed as failure:
            log.warning(
                "retry_delivery_failed",
                extra={"message_id": part.message_id, "code": failure.code, "reason": failure.reason},
            )
            outcome = part.undeliverable(failure.code, failure.reason, self._clock.now())
        else:
            outcome = part.sent(platform_message_id, self._clock.now())
        if not self._turns.save_part(PartChange(outcome, MessageStatus.SENDING)):
            log.error("retry_outcome_not_saved", extra={"message_id": part.message_id})
        return outcome
