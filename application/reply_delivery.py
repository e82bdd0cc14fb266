"""The last step of a turn: its reply's parts sent on the channel, each at most once, in order."""

from __future__ import annotations

import logging

from application.ports.pipeline import TurnStore
from application.ports.services import ChannelSenders, Clock, DeliveryFailed
from domain.conversations import Conversation
from domain.messages import Message
from domain.tenancy import Route
from domain.turns import Reply, StepKind, TurnStatus

log = logging.getLogger(__name__)


class ReplyDelivery:
    def __init__(self, turns: TurnStore, senders: ChannelSenders, clock: Clock) -> None:
        self._turns = turns
        self._senders = senders
        self._clock = clock

    def send(self, reply: Reply, conversation: Conversation, route: Route | None) -> None:
        """Walk the reply as the domain says (`Reply.next_step`); the last part's outcome ends the turn
        in the same save. `route` is None when the channel is gone."""
        policy = route.channel.policy if route is not None else None
        while (step := reply.next_step(conversation, policy, self._clock.now())) is not None:
            if step.kind is StepKind.FINISH:
                reply, done = reply.finished(self._clock.now())
                self._turns.save_turn(done, before=TurnStatus.REPLYING)
                return
            assert step.part is not None
            if step.kind is StepKind.CLAIM:
                reply, claim = reply.claim(step.part, self._clock.now())
                if not self._turns.save_part(claim):
                    return  # another worker took this part: it carries the reply on
                continue
            if step.kind is StepKind.SEND:
                assert route is not None
                outcome = self._attempt(step.part, conversation, route)
            else:
                outcome = step.part.undeliverable(None, step.reason or "", self._clock.now())
            reply, change = reply.outcome(outcome, self._clock.now())
            self._turns.save_part(change)

    def mark_read(self, route: Route, last: Message) -> None:
        """Tell the customer their messages were read, where the channel has read receipts."""
        if not route.channel.policy.read_receipts or last.platform_message_id is None:
            return
        try:
            self._senders.for_type(route.channel.type).mark_read(route.channel, last.platform_message_id)
        except DeliveryFailed as failure:
            # A read receipt is a courtesy; failing it must not hold up the answer.
            log.info("mark_read_failed", extra={"code": failure.code, "reason": failure.reason})

    def _attempt(self, part: Message, conversation: Conversation, route: Route) -> Message:
        """The one send attempt of a claimed part: the part as sent, or as failed with the channel's code."""
        try:
            sender = self._senders.for_type(route.channel.type)
            platform_message_id = sender.send_text(route.channel, conversation.customer_id, part.text or "")
        except DeliveryFailed as failure:
            log.warning(
                "delivery_failed", extra={"message_id": part.message_id, "code": failure.code, "reason": failure.reason}
            )
            return part.undeliverable(failure.code, failure.reason, self._clock.now())
        return part.sent(platform_message_id, self._clock.now())
