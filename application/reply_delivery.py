"""The last step of a turn: its reply's parts sent on the channel, each at most once, in order."""

from __future__ import annotations

import logging
from datetime import timedelta

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

    def send(
        self, reply: Reply, conversation: Conversation, route: Route | None, *, patience: timedelta | None
    ) -> bool:
        """Walk the reply as the domain says (`Reply.next_step`); the last part's outcome ends the turn
        in the same save. `route` is None when the channel is gone.

        False when the reply waits for the channel's platform (down, or rate limiting us): the turn stays
        open with its unsent parts pending, and the sweep brings it back after `RECOVERY_AFTER_MS`."""
        policy = route.channel.policy if route is not None else None
        while True:
            reachable = route is None or self.reachable(route)
            step = reply.next_step(
                conversation, policy, self._clock.now(), channel_reachable=reachable, patience=patience
            )
            if step is None:
                return True
            if step.kind is StepKind.FINISH:
                reply, done = reply.finished(self._clock.now())
                self._turns.save_turn(done, before=TurnStatus.REPLYING)
                return True
            if step.kind is StepKind.WAIT:
                return self._wait(reply)
            assert step.part is not None
            if step.kind is StepKind.CLAIM:
                reply, claim = reply.claim(step.part, self._clock.now())
                if not self._turns.save_part(claim):
                    return True  # another worker took this part: it carries the reply on
                continue
            if step.kind is StepKind.SEND:
                assert route is not None
                outcome = self._attempt(step.part, conversation, route)
                if outcome is None:  # not taken, to be sent again later
                    reply, change = reply.not_taken(step.part, self._clock.now())
                    self._turns.save_part(change)
                    return self._wait(reply)
            else:
                outcome = step.part.undeliverable(None, step.reason or "", self._clock.now())
            reply, change = reply.outcome(outcome, self._clock.now())
            self._turns.save_part(change)

    def _wait(self, reply: Reply) -> bool:
        """Mark the turn as looked at now, so that the sweep brings it back after a pause, not at once."""
        self._turns.save_turn(reply.turn.wait_for_channel(self._clock.now()), before=TurnStatus.REPLYING)
        log.info("reply_waits_for_channel", extra={"turn_id": reply.turn.turn_id})
        return False

    def reachable(self, route: Route) -> bool:
        """Whether the channel's platform is not being waited out."""
        return self._senders.available(route.channel.type)

    def mark_read(self, route: Route, last: Message, *, typing: bool = False) -> None:
        """Tell the customer their messages were read, where the channel has read receipts; with `typing`,
        the same call shows that a reply is being written, where the channel has a typing indicator."""
        if not route.channel.policy.read_receipts or last.platform_message_id is None:
            return
        if not self.reachable(route):
            return
        try:
            self._senders.for_type(route.channel.type).mark_read(
                route.channel, last.platform_message_id, typing=typing and route.channel.policy.typing_indicator
            )
        except DeliveryFailed as failure:
            # A read receipt is a courtesy; failing it must not hold up the answer.
            log.info("mark_read_failed", extra={"code": failure.code, "reason": failure.reason})

    def _attempt(self, part: Message, conversation: Conversation, route: Route) -> Message | None:
        """The one send attempt of a claimed part: the part as sent, or as failed with the channel's code;
        None when the channel certainly did not take it and asked to be tried later."""
        try:
            sender = self._senders.for_type(route.channel.type)
            platform_message_id = sender.send_text(route.channel, conversation.customer_id, part.text or "")
        except DeliveryFailed as failure:
            if failure.retry_safe:
                log.warning(
                    "delivery_deferred",
                    extra={"message_id": part.message_id, "code": failure.code, "reason": failure.reason},
                )
                return None
            log.warning(
                "delivery_failed", extra={"message_id": part.message_id, "code": failure.code, "reason": failure.reason}
            )
            return part.undeliverable(failure.code, failure.reason, self._clock.now())
        return part.sent(platform_message_id, self._clock.now())
