"""A conversation: one customer and one agent on one channel, its messages numbered in order."""

from __future__ import annotations

from datetime import datetime, timedelta

from attrs import evolve, frozen

from domain.channels import BotState, ChannelPolicy
from domain.errors import InvalidTransition, RetryRefused
from domain.messages import Direction, InboundMessage, Message, Sender

#: Why a reply part is not sent (stored as its failure reason).
CHANNEL_REMOVED = "channel_removed"
OUTSIDE_SERVICE_WINDOW = "outside_service_window"

#: Why a failed message is not retried, besides those above.
CONVERSATION_ARCHIVED = "conversation_archived"
NO_AGENT_NOW = "no_agent"
REPLY_IN_PROGRESS = "reply_in_progress"


@frozen
class Conversation:
    """`last_sequence_no` is the number of the latest message, customer's or ours: every message gets
    the next one, so the sequence is the order the conversation happened in. Only the active
    conversation of a customer and an agent takes new messages; an archived one keeps its history.

    `ai_seen_sequence_no`: what the AI was told of, so the next turn tells it what came since besides
    the new messages (a person's replies). `bot` paused: a person from the team answers, not the AI;
    `bot_paused_until` ends a timed pause by itself (None: paused until resumed)."""

    conversation_id: int
    user_id: str
    agent_id: str
    phone_number_id: str
    customer_id: str
    customer_name: str | None
    openai_conversation_id: str | None
    openai_last_item_id: str | None
    is_active: bool
    last_sequence_no: int
    created_at: datetime
    last_message_at: datetime
    last_customer_message_at: datetime | None
    bot: BotState = BotState.ACTIVE
    bot_paused_until: datetime | None = None
    #: The AI has seen every message up to this number (its latest answer's last part).
    ai_seen_sequence_no: int = 0

    @classmethod
    def open(
        cls, conversation_id: int, user_id: str, agent_id: str, inbound: InboundMessage, now: datetime
    ) -> Conversation:
        """A new conversation, before its first message."""
        return cls(
            conversation_id=conversation_id,
            user_id=user_id,
            agent_id=agent_id,
            phone_number_id=inbound.phone_number_id,
            customer_id=inbound.customer_id,
            customer_name=inbound.customer_name,
            openai_conversation_id=None,
            openai_last_item_id=None,
            is_active=True,
            last_sequence_no=0,
            created_at=now,
            last_message_at=now,
            last_customer_message_at=None,
        )

    @classmethod
    def start(
        cls,
        conversation_id: int,
        user_id: str,
        agent_id: str,
        phone_number_id: str,
        customer_id: str,
        now: datetime,
    ) -> Conversation:
        """A new conversation the business begins (from its own app), before its first message."""
        return cls(
            conversation_id=conversation_id,
            user_id=user_id,
            agent_id=agent_id,
            phone_number_id=phone_number_id,
            customer_id=customer_id,
            customer_name=None,
            openai_conversation_id=None,
            openai_last_item_id=None,
            is_active=True,
            last_sequence_no=0,
            created_at=now,
            last_message_at=now,
            last_customer_message_at=None,
        )

    def receive(self, inbound: InboundMessage, now: datetime) -> Conversation:
        """The conversation after a customer's message: numbered next, and the service window counted
        from the latest message the customer sent (deliveries may arrive out of order)."""
        if not self.is_active:
            raise InvalidTransition(f"conversation {self.conversation_id} is archived: it takes no new messages")
        last = self.last_customer_message_at
        return evolve(
            self,
            last_sequence_no=self.last_sequence_no + 1,
            last_message_at=max(self.last_message_at, now),
            last_customer_message_at=inbound.sent_at if last is None else max(last, inbound.sent_at),
            customer_name=inbound.customer_name or self.customer_name,
        )

    def append(self, count: int, now: datetime) -> Conversation:
        """The conversation after `count` messages of ours, numbered after every message so far."""
        return evolve(
            self, last_sequence_no=self.last_sequence_no + count, last_message_at=max(self.last_message_at, now)
        )

    def take_over(self, now: datetime) -> Conversation:
        """A person from the team wrote to the customer: the bot stays out of the way, paused until resumed
        (a pause in place is kept as it is)."""
        return self if self.bot is BotState.PAUSED else self.pause(now)

    def echo(self, now: datetime) -> Conversation:
        """The conversation after a message the business sent from its own app: numbered next, and taken over."""
        if not self.is_active:
            raise InvalidTransition(f"conversation {self.conversation_id} is archived: it takes no new messages")
        return self.append(1, now).take_over(now)

    def window_open(self, policy: ChannelPolicy, now: datetime) -> bool:
        return policy.window_open(self.last_customer_message_at, now)

    def send_refusal(self, policy: ChannelPolicy | None, now: datetime, *, by_person: bool = False) -> str | None:
        """Why a reply may not be sent to the customer now (None: it may). `policy` is None when the
        channel is gone. The AI's reply is held to the service window; a person's (`by_person`) to the
        channel's human window, which may last longer (Instagram's 7 days with the human-agent tag)."""
        if policy is None:
            return CHANNEL_REMOVED
        window_open = policy.human_window_open if by_person else policy.window_open
        if not window_open(self.last_customer_message_at, now):
            return OUTSIDE_SERVICE_WINDOW
        return None

    def needs_human_tag(self, part: Message, policy: ChannelPolicy, now: datetime) -> bool:
        """Whether a reply part sent now goes out with the platform's human-agent tag: a person's part once
        the service window is over and the human window is not; the AI's never (it is not sent outside
        the service window at all)."""
        return part.sender is Sender.HUMAN and policy.needs_human_tag(self.last_customer_message_at, now)

    def retry(
        self,
        message: Message,
        policy: ChannelPolicy | None,
        now: datetime,
        *,
        has_agent: bool,
        open_turn_id: int | None = None,
    ) -> Message | None:
        """A failed message of this conversation given another chance now (`Message.retry`), or None when
        it is not failed. `policy` is None when the channel is gone; `has_agent` whether it still has one;
        `open_turn_id` the turn a worker is answering the conversation with, if any.

        Only an active conversation's messages are retried: an archived one takes no new messages, and
        a retry would be one. A retry must be able to succeed now: the reply must be allowed out (the
        channel is there and the customer's window is open: the service window for the AI's reply and
        for a customer's message the AI is to answer, the human window for a person's reply), and a
        customer's message needs an agent to answer it. A part of a reply the worker is still sending
        is the worker's: it settles the part's neighbours from what it read, and would take a part found
        `sending` for one a stopped worker left. Refusals are `RetryRefused`, and nothing changes.
        """
        if message.conversation_id != self.conversation_id:
            raise InvalidTransition(f"message {message.message_id} is not in conversation {self.conversation_id}")
        retried = message.retry(now)
        if retried is None:
            return None
        if not self.is_active:
            raise RetryRefused(
                CONVERSATION_ARCHIVED,
                f"conversation {self.conversation_id} is archived: its messages are not retried",
            )
        refusal = self.send_refusal(policy, now, by_person=message.sender is Sender.HUMAN)
        if refusal is None and message.direction is Direction.INBOUND and not has_agent:
            refusal = NO_AGENT_NOW
        if (
            refusal is None
            and message.direction is Direction.OUTBOUND
            and message.turn_id is not None
            and message.turn_id == open_turn_id
        ):
            refusal = REPLY_IN_PROGRESS
        if refusal is not None:
            raise RetryRefused(refusal, _RETRY_REFUSALS[refusal])
        return retried

    def link_ai(self, openai_conversation_id: str) -> Conversation:
        """The AI-side conversation that keeps this one's history, created once."""
        if self.openai_conversation_id is not None:
            raise InvalidTransition(f"conversation {self.conversation_id} has its AI conversation already")
        return evolve(self, openai_conversation_id=openai_conversation_id)

    def archive(self) -> Conversation:
        """No new messages: the customer's next message starts a new conversation. History is kept."""
        return evolve(self, is_active=False)

    # --- who answers: the AI, or a person from the team -------------------------------------------

    def ai_answers(self, channel_bot: BotState) -> bool:
        """The AI answers only when the channel's bot and the conversation's are both active.

        A timed pause that has run out still holds until the recovery sweep resumes it (`paused_run_out`):
        the sweep gives the AI what was held first, so the customer's messages are answered in order."""
        return channel_bot is BotState.ACTIVE and self.bot is BotState.ACTIVE

    def pause(self, now: datetime, resume_after: timedelta | None = None) -> Conversation:
        """A person takes over: until resumed, or for `resume_after` from now."""
        if resume_after is not None and resume_after <= timedelta(0):
            raise InvalidTransition("a timed pause must last a while")
        until = None if resume_after is None else now + resume_after
        return evolve(self, bot=BotState.PAUSED, bot_paused_until=until)

    def resume(self) -> Conversation:
        """The AI answers again."""
        return evolve(self, bot=BotState.ACTIVE, bot_paused_until=None)

    def paused_run_out(self, now: datetime) -> bool:
        """A timed pause whose time has come: the bot resumes by itself (the sweep makes it so)."""
        return self.bot is BotState.PAUSED and self.bot_paused_until is not None and self.bot_paused_until <= now


_RETRY_REFUSALS = {
    CHANNEL_REMOVED: "the channel of this conversation was removed: nothing can be sent on it",
    OUTSIDE_SERVICE_WINDOW: "the customer's service window is closed: nothing can be sent until they write again",
    NO_AGENT_NOW: "the channel has no agent to answer this message",
    REPLY_IN_PROGRESS: "the rest of this reply is still being sent; retry once it has its outcome",
}
