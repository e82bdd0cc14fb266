"""Human hand-off: a person's reply, and what happens to the customer's messages that waited while a
person had taken over.

When the bot resumes, the held messages that came after the conversation's last reply (the AI's or a
person's) are answered by the AI, in order, as if they had just come; the ones before it were
answered by that person already and are skipped, saying so. Nothing is lost and nothing answered twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from attrs import frozen

from domain.channels import BotState, ChannelPolicy
from domain.conversations import Conversation
from domain.errors import ConversationArchived, InvalidTransition, OutsideServiceWindow, ValidationFailed
from domain.messages import Direction, Message, MessageStatus, Sender
from domain.turns import PartDraft, StatusChange

#: Why a held message is not answered by the AI: a person replied after it.
ANSWERED_BY_HUMAN = "answered_by_human"

#: How the AI is told that a reply was a person's, not its own.
HUMAN_REPLY_PREFIX = "[A person from the team replied to the customer:] "

#: Roles of what the AI is told (the Responses API's input message roles).
USER = "user"
ASSISTANT = "assistant"

#: Statuses of a person's reply that reached the customer (or may have).
_REACHED = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED})


@frozen
class BotResumed:
    """The held messages of a conversation whose bot answers again, on their way: `to_answer` back to
    `received` (the AI answers them), `answered` skipped as answered by a person."""

    conversation: Conversation
    to_answer: StatusChange
    answered: StatusChange
    at: datetime

    @property
    def released(self) -> bool:
        return bool(self.to_answer.message_ids)


def release_held(
    conversation: Conversation, held: Sequence[Message], last_reply_sequence_no: int, now: datetime
) -> BotResumed:
    """What the AI answering `conversation` again does to `held` (its held messages, read under its lock),
    given the number of its latest outbound message (0: none)."""
    if conversation.bot is not BotState.ACTIVE:
        raise InvalidTransition(f"conversation {conversation.conversation_id} is paused: nothing is released")
    if any(
        m.conversation_id != conversation.conversation_id
        or m.direction is not Direction.INBOUND
        or m.status is not MessageStatus.HELD
        for m in held
    ):
        raise InvalidTransition(f"only held messages of conversation {conversation.conversation_id} are released")
    ordered = sorted(held, key=lambda m: m.sequence_no)
    after = tuple(m.message_id for m in ordered if m.sequence_no > last_reply_sequence_no)
    before = tuple(m.message_id for m in ordered if m.sequence_no < last_reply_sequence_no)
    of = conversation.conversation_id
    return BotResumed(
        conversation=conversation,
        to_answer=StatusChange(of, after, MessageStatus.HELD, MessageStatus.RECEIVED),
        answered=StatusChange(of, before, MessageStatus.HELD, MessageStatus.SKIPPED, ANSWERED_BY_HUMAN),
        at=now,
    )


@frozen
class HumanReply:
    """A person's reply before storage numbers its parts (after every message so far): the conversation
    after it (numbered on, and paused unless told otherwise), and the parts to send, in order."""

    conversation: Conversation
    before: Conversation
    parts: tuple[PartDraft, ...]
    at: datetime
    #: The parts go out with the platform's human-agent tag: the service window is over, the human one is not.
    human_agent_tag: bool = False


def human_reply(
    conversation: Conversation, policy: ChannelPolicy, text: str, now: datetime, *, pause: bool = True
) -> HumanReply:
    """A person from the team replies: only in an active conversation, only while the channel lets a
    free-form message reach the customer, split as the channel needs. The bot stays out of the way
    (paused until resumed) unless `pause` is False."""
    if not conversation.is_active:
        raise ConversationArchived(f"conversation {conversation.conversation_id} is archived: it takes no messages")
    if not policy.human_window_open(conversation.last_customer_message_at, now):
        raise OutsideServiceWindow(
            "the channel's service window is closed: the customer has not written for too long to receive a"
            " free-form message"
        )
    texts = policy.split(text)
    if not texts:
        raise ValidationFailed("text must not be empty", field="text")
    after = conversation.append(len(texts), now)
    if pause:
        after = after.take_over(now)
    parts = tuple(PartDraft(part, MessageStatus.PENDING, None, None) for part in texts)
    tag = policy.needs_human_tag(conversation.last_customer_message_at, now)
    return HumanReply(conversation=after, before=conversation, parts=parts, at=now, human_agent_tag=tag)


def ai_context(unseen: Sequence[Message]) -> tuple[tuple[str, str], ...]:
    """What the AI is told, before the new messages it answers, of what came since it last answered and was
    not for it: the customer's messages a person answered (`user`) and the person's replies that reached
    the customer (`assistant`, marked as a person's), in order. The AI then neither repeats nor contradicts
    them. Messages without text, and replies that never reached the customer, are left out."""
    told: list[tuple[str, str]] = []
    for message in sorted(unseen, key=lambda m: m.sequence_no):
        if message.text is None:
            continue
        if message.sender is Sender.CUSTOMER and message.status in (MessageStatus.SKIPPED, MessageStatus.HELD):
            told.append((USER, message.text))
        elif message.sender is Sender.HUMAN and message.status in _REACHED:
            told.append((ASSISTANT, HUMAN_REPLY_PREFIX + message.text))
    return tuple(told)
