"""A person from the team replies to a customer through the API: stored as the conversation's next
message (`sender: human`), sent on the channel once, and the bot paused so it does not talk over them.

The reply's parts follow the same life cycle as the AI's (pending → sending, committed before the send →
sent, or failed with the channel's code): a part found `sending` later may have gone out and is never
sent again. The same Idempotency-Key in the same conversation returns the first reply and sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from attrs import frozen

from application.ports.pipeline import TurnStore
from application.ports.repositories import UnitOfWork
from application.ports.services import ChannelSenders, Clock, DeliveryFailed
from domain.errors import ChannelRefused, NotFound
from domain.handoff import human_reply
from domain.messages import Message, MessageStatus
from domain.tenancy import Channel
from domain.turns import EARLIER_PART_FAILED, PartChange

log = logging.getLogger(__name__)


@frozen
class SendHumanReplyCommand:
    user_id: str
    conversation_id: int
    text: str
    pause: bool = True
    idempotency_key: str | None = None


@frozen
class SentHumanReply:
    parts: tuple[Message, ...]
    replayed: bool


class SendHumanReply:
    def __init__(self, uow: Callable[[], UnitOfWork], turns: TurnStore, senders: ChannelSenders, clock: Clock) -> None:
        self._uow = uow
        self._turns = turns
        self._senders = senders
        self._clock = clock

    def __call__(self, command: SendHumanReplyCommand) -> SentHumanReply:
        with self._uow() as uow:
            conversation = uow.conversations.lock(command.user_id, command.conversation_id)
            if conversation is None:
                raise NotFound(f"conversation {command.conversation_id} not found")
            if command.idempotency_key is not None:
                earlier = uow.messages.human_reply(conversation.conversation_id, command.idempotency_key)
                if earlier:
                    return SentHumanReply(earlier, replayed=True)
            channel = uow.channels.get(command.user_id, conversation.phone_number_id)
            if channel is None:
                raise NotFound(f"the channel of conversation {command.conversation_id} is gone")
            reply = human_reply(conversation, channel.policy, command.text, self._clock.now(), pause=command.pause)
            parts = uow.messages.add_human_reply(reply, command.idempotency_key)
            uow.commit()
        sent = self._send(channel, conversation.customer_id, parts, human_agent=reply.human_agent_tag)
        failed = next((part for part in sent if part.status is MessageStatus.FAILED), None)
        if failed is not None:
            raise ChannelRefused(
                f"the channel refused the reply (code {failed.failure_code}): it is stored as message"
                f" {failed.message_id}, failed, and can be sent again later",
                message_id=failed.message_id,
                failure_code=failed.failure_code,
            )
        return SentHumanReply(sent, replayed=False)

    def _send(
        self, channel: Channel, recipient: str, parts: tuple[Message, ...], *, human_agent: bool
    ) -> tuple[Message, ...]:
        """Each part once, in order: claimed (saved) before its send, then sent or failed. After a failed
        part the later ones fail too: a reply with a hole in the middle would read wrong."""
        outcomes: list[Message] = []
        earlier_failed = False
        for part in parts:
            now = self._clock.now()
            if earlier_failed:
                outcome = part.undeliverable(None, EARLIER_PART_FAILED, now)
                self._turns.save_part(PartChange(outcome, part.status))
                outcomes.append(outcome)
                continue
            claimed = part.claim(now)
            if not self._turns.save_part(PartChange(claimed, part.status)):
                outcomes.append(part)
                continue
            try:
                sender = self._senders.for_type(channel.type)
                platform_id = sender.send_text(channel, recipient, part.text or "", human_agent=human_agent)
                outcome = claimed.sent(platform_id, self._clock.now())
            except DeliveryFailed as failure:
                log.warning(
                    "human_reply_failed",
                    extra={"message_id": part.message_id, "code": failure.code, "reason": failure.reason},
                )
                outcome = claimed.undeliverable(failure.code, failure.reason, self._clock.now())
                earlier_failed = True
            self._turns.save_part(PartChange(outcome, claimed.status))
            outcomes.append(outcome)
        return tuple(outcomes)
