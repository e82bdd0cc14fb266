"""RelinkAgent's rules: what happens on a channel when the agent answering it changes.

An agent leaving a channel (linked elsewhere, unlinked, deleted, or displaced by another agent
linked to it) archives its active conversations there: their history stays, and the customer's
next message starts a new conversation (and a new AI-side conversation).

At that moment a conversation may be mid-turn:

- a reply the old agent already has (its turn is `replying`) is delivered: it was the agent's
  answer while the business still had it linked, and stopping half-way would leave half a reply;
- what the old agent has not answered yet goes to the agent taking the channel: a turn still
  awaiting the AI fails as `relinked` (its hold released, nothing charged) and its messages, with
  the conversation's other `received` ones and those `held` for a person while its bot was paused,
  are carried over in order to the customer's new conversation with the successor (whose bot is
  active), to be answered once, by it. With no successor they end
  `skipped` as `agent_unlinked`: visible, not answered, not charged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from attrs import frozen

from domain.conversations import Conversation
from domain.credits import CreditMovement
from domain.errors import InvalidTransition
from domain.messages import Direction, Message, MessageStatus
from domain.tenancy import Agent
from domain.turns import StatusChange, Turn, TurnStatus

#: Why a turn awaiting the AI ended without an answer: its channel went to another agent.
RELINKED = "relinked"
#: Why a message was not answered: its agent left the channel and no agent took it.
AGENT_UNLINKED = "agent_unlinked"


@frozen
class Seat:
    """What an agent holds on its channel, read when it leaves: its active conversations there, their
    turns still awaiting the AI, and their inbound messages not answered yet (`received`, `held` for a
    person, or `processing` in one of those turns)."""

    agent: Agent
    conversations: tuple[Conversation, ...]
    waiting: tuple[Turn, ...]
    unanswered: tuple[Message, ...]


@frozen
class Archived:
    """A conversation closed by a relink, as `conversation_archives` records it."""

    conversation_id: int
    user_id: str
    old_agent_id: str
    new_agent_id: str | None
    phone_number_id: str
    at: datetime


@frozen
class Withdrawn:
    """A turn that was awaiting the AI when its agent left: failed, its hold released, nothing charged.
    Its messages are carried over or skipped with the rest (see `Departure`)."""

    turn: Turn
    before: TurnStatus
    release: CreditMovement


@frozen
class Carried:
    """A message moving to the customer's new conversation, numbered `sequence_no` there, `received` again."""

    message_id: int
    before: MessageStatus
    from_conversation_id: int
    sequence_no: int


@frozen
class Reopened:
    """The customer's new conversation with the successor, before storage gives it its id, holding the
    messages carried over (numbered from 1 in their order)."""

    user_id: str
    agent_id: str
    phone_number_id: str
    customer_id: str
    customer_name: str | None
    at: datetime
    last_customer_message_at: datetime | None
    messages: tuple[Carried, ...]

    @property
    def last_sequence_no(self) -> int:
        return len(self.messages)


@frozen
class Departure:
    """Everything one agent's leaving of one channel changes."""

    archived: tuple[Archived, ...] = ()
    withdrawn: tuple[Withdrawn, ...] = ()
    reopened: tuple[Reopened, ...] = ()
    skipped: tuple[StatusChange, ...] = ()


@frozen
class Move:
    """An agent whose link changes (`before` → `after`); `successor` is who takes the channel it leaves."""

    before: Agent
    after: Agent
    successor: Agent | None

    @property
    def leaves(self) -> str | None:
        """The channel the agent leaves, if any."""
        left = self.before.phone_number_id
        return left if left is not None and left != self.after.phone_number_id else None

    def depart(self, seat: Seat, now: datetime) -> Departure:
        """What leaving the channel does to the seat the agent held there."""
        channel = self.leaves
        if channel is None:
            return Departure()
        if seat.agent.agent_id != self.before.agent_id:
            raise InvalidTransition(f"the seat of agent {seat.agent.agent_id} is not agent {self.before.agent_id}'s")
        successor = self.successor
        archived = tuple(
            Archived(
                c.conversation_id,
                c.user_id,
                self.before.agent_id,
                None if successor is None else successor.agent_id,
                channel,
                now,
            )
            for c in seat.conversations
            if c.is_active and c.phone_number_id == channel
        )
        ours = {a.conversation_id for a in archived}
        withdrawn = tuple(
            Withdrawn(failed.turn, failed.before, failed.release)
            for failed in (
                turn.fail(RELINKED if successor is not None else AGENT_UNLINKED, now)
                for turn in seat.waiting
                if turn.conversation_id in ours and turn.status is TurnStatus.AWAITING_AI
            )
        )
        unanswered = [
            m
            for m in seat.unanswered
            if m.conversation_id in ours
            and m.direction is Direction.INBOUND
            and m.status in (MessageStatus.RECEIVED, MessageStatus.PROCESSING, MessageStatus.HELD)
        ]
        if successor is None:
            return Departure(archived, withdrawn, skipped=_skipped(unanswered))
        conversations = {c.conversation_id: c for c in seat.conversations}
        reopened = tuple(
            _reopen(conversations[conversation_id], successor, messages, now)
            for conversation_id, messages in _by_conversation(unanswered).items()
        )
        return Departure(archived, withdrawn, reopened=reopened)


@frozen
class Relink:
    """A relink decided as a whole, saved in one transaction: the agents as they are after, in the order
    they are saved, and what each departure does. Every conversation is archived before any is
    opened: an agent moving between two channels of one tenant may meet the same customer on both."""

    agents: tuple[Agent, ...]
    departures: tuple[Departure, ...]
    at: datetime

    @property
    def reopened(self) -> tuple[Reopened, ...]:
        return tuple(r for d in self.departures for r in d.reopened)

    @property
    def withdrawn(self) -> tuple[Withdrawn, ...]:
        return tuple(w for d in self.departures for w in d.withdrawn)


def relink(agent: Agent, after: Agent, holder: Agent | None) -> tuple[Move, ...]:
    """The agents whose link changes when `agent` becomes `after`, in the order they are saved: the
    channel's current agent (`holder`, when it is another one) is unlinked before `after` takes it."""
    if after.agent_id != agent.agent_id:
        raise InvalidTransition(f"agent {agent.agent_id} cannot become agent {after.agent_id}")
    moves: list[Move] = []
    if holder is not None and holder.agent_id != agent.agent_id:
        if holder.phone_number_id is None or holder.phone_number_id != after.phone_number_id:
            raise InvalidTransition(f"agent {holder.agent_id} does not hold channel {after.phone_number_id}")
        moves.append(Move(holder, holder.link(None), successor=after))
    moves.append(Move(agent, after, successor=None))
    return tuple(moves)


def _by_conversation(messages: Iterable[Message]) -> dict[int, list[Message]]:
    grouped: dict[int, list[Message]] = {}
    for message in sorted(messages, key=lambda m: (m.conversation_id, m.sequence_no)):
        grouped.setdefault(message.conversation_id, []).append(message)
    return grouped


def _reopen(archived: Conversation, successor: Agent, messages: list[Message], now: datetime) -> Reopened:
    sent = [m.sent_at for m in messages if m.sent_at is not None]
    return Reopened(
        user_id=archived.user_id,
        agent_id=successor.agent_id,
        phone_number_id=archived.phone_number_id,
        customer_id=archived.customer_id,
        customer_name=archived.customer_name,
        at=now,
        last_customer_message_at=max(sent) if sent else None,
        messages=tuple(
            Carried(m.message_id, m.status, m.conversation_id, number) for number, m in enumerate(messages, start=1)
        ),
    )


def _skipped(messages: list[Message]) -> tuple[StatusChange, ...]:
    """One change per conversation and status they leave, in conversation order."""
    changes = []
    for conversation_id, theirs in _by_conversation(messages).items():
        for status in (MessageStatus.RECEIVED, MessageStatus.PROCESSING, MessageStatus.HELD):
            ids = tuple(m.message_id for m in theirs if m.status is status)
            if ids:
                changes.append(StatusChange(conversation_id, ids, status, MessageStatus.SKIPPED, AGENT_UNLINKED))
    return tuple(changes)
