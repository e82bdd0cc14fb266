"""An AI turn: one OpenAI call answering a conversation's pending messages at once, one charge.

    awaiting_ai  --answered-->  replying  --every part sent or failed-->  done
         \\--failed--> failed (the hold released)

Each transition is a method here and returns what changed (`TurnStarted`, `TurnAnswered`,
`TurnFailed`, `PartOutcome`, …); storage saves that change, conditional on the state the
change started from, so two workers can never both move a turn or a part on.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from attrs import evolve, field, frozen

from domain.channels import BotState, ChannelPolicy
from domain.conversations import OUTSIDE_SERVICE_WINDOW, Conversation
from domain.credits import CreditMovement, Credits
from domain.errors import InvalidTransition
from domain.messages import DELIVERY_OUTCOME_UNKNOWN, Direction, Message, MessageStatus
from domain.tenancy import Route

#: Why a batch of pending messages gets no AI turn (stored as the messages' failure reason).
NO_AGENT = "no_agent"
INSUFFICIENT_CREDITS = "insufficient_credits"

#: Why a message is not answered after all: its upstream (OpenAI, the channel's platform) stayed
#: unreachable longer than the service waits for it.
AI_UNAVAILABLE = "ai_unavailable"
CHANNEL_UNAVAILABLE = "channel_unavailable"

#: Why a reply part is failed without a send attempt.
EARLIER_PART_FAILED = "earlier_part_failed"


class TurnStatus(enum.StrEnum):
    AWAITING_AI = "awaiting_ai"  # credits held, the AI has not answered yet
    REPLYING = "replying"  # reply stored and charged, its parts being sent
    DONE = "done"
    FAILED = "failed"  # the AI call failed for good; the hold released

    @property
    def open(self) -> bool:
        return self in (TurnStatus.AWAITING_AI, TurnStatus.REPLYING)


@frozen
class AIReply:
    text: str
    response_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    last_item_id: str | None = None


@frozen
class StatusChange:
    """Messages of one conversation moving from one status to another, for the same reason. Storage finds
    them through their conversation (see `adapters/postgres/turn_store.py`, `_batch_change`)."""

    conversation_id: int
    message_ids: tuple[int, ...]
    before: MessageStatus
    after: MessageStatus
    reason: str | None = None


@frozen
class TurnRefused:
    """The batch gets no AI call: its messages fail with the reason, nothing is held or charged."""

    batch: StatusChange
    at: datetime

    @property
    def reason(self) -> str:
        assert self.batch.reason is not None
        return self.batch.reason


@frozen
class TurnHeld:
    """The bot is paused (the conversation's or the channel's): no AI call, nothing held or charged, no read
    receipt; the batch waits, `held`, for a person. Saved only while the conversation and the channel
    are still as they were read (`conversation`, `channel_bot`): a resume in between means decide again."""

    batch: StatusChange
    conversation: Conversation
    channel_bot: BotState
    at: datetime


@frozen
class TurnPostponed:
    """The AI cannot be reached now: no turn yet, nothing held; the batch stays pending, in its place."""

    batch: tuple[int, ...]


@frozen
class TurnStarted:
    """A new turn, before storage gives it its id: the credits to hold and the batch it answers."""

    user_id: str
    conversation_id: int
    phone_number_id: str
    hold: CreditMovement
    batch: StatusChange
    at: datetime

    @property
    def credits_reserved(self) -> int:
        return self.hold.reserved

    def turn(self, turn_id: int) -> Turn:
        """The turn as stored under `turn_id`."""
        return Turn(
            turn_id=turn_id,
            user_id=self.user_id,
            conversation_id=self.conversation_id,
            phone_number_id=self.phone_number_id,
            status=TurnStatus.AWAITING_AI,
            inbound_ids=self.batch.message_ids,
            credits_reserved=self.credits_reserved,
            attempts=0,
            response_id=None,
            failure_reason=None,
            created_at=self.at,
            updated_at=self.at,
        )


@frozen
class PartDraft:
    """A reply part before storage numbers it (after every message of the conversation so far)."""

    text: str
    status: MessageStatus
    input_tokens: int | None
    output_tokens: int | None


@frozen
class TurnAnswered:
    """The AI answered: the turn moves to `replying`, the reply is stored as `parts` (the first already
    claimed for its send when it may go out now; the token usage on it), the batch is answered and the
    hold becomes a charge."""

    turn: Turn
    before: TurnStatus
    parts: tuple[PartDraft, ...]
    batch: StatusChange
    charge: CreditMovement
    last_item_id: str | None

    @property
    def first_part_claimed(self) -> bool:
        return self.parts[0].status is MessageStatus.SENDING


@frozen
class TurnFailed:
    """The AI could not answer: the turn fails, its hold is released and its batch fails with the reason."""

    turn: Turn
    before: TurnStatus
    release: CreditMovement
    batch: StatusChange


@frozen
class Turn:
    turn_id: int
    user_id: str
    conversation_id: int
    phone_number_id: str
    status: TurnStatus
    inbound_ids: tuple[int, ...]
    credits_reserved: int
    attempts: int
    response_id: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def due_at(batch: tuple[Message, ...], quiet_for: timedelta) -> datetime:
        """When a batch is answered: once the customer has been quiet for `quiet_for` (they may still be
        typing, and a later message joins the same turn)."""
        return batch[-1].created_at + quiet_for

    @staticmethod
    def start(
        conversation: Conversation,
        batch: tuple[Message, ...],
        route: Route | None,
        credits: Credits,
        cost: int,
        now: datetime,
        *,
        ai_reachable: bool = True,
        patience: timedelta | None = None,
    ) -> TurnStarted | TurnRefused | TurnPostponed | TurnHeld:
        """Answer the leading pending messages of a conversation in one turn — if its channel still has an
        agent (`route` is None when the channel is gone), the service window is open and `cost` credits
        can be held. Otherwise the batch is refused with the reason: no AI call, no charge.

        While the bot is paused (the channel's or the conversation's) the batch is held for a person: no
        AI call, no charge.

        While the AI cannot be reached (an outage), the batch waits: no turn, no hold. A batch whose
        first message has waited `patience` is refused as `ai_unavailable`."""
        if not batch or any(
            m.conversation_id != conversation.conversation_id or m.status is not MessageStatus.RECEIVED for m in batch
        ):
            raise InvalidTransition(f"a turn answers received messages of conversation {conversation.conversation_id}")
        ids = tuple(m.message_id for m in batch)
        of = conversation.conversation_id
        if route is not None and route.agent is not None and not conversation.ai_answers(route.channel.bot):
            held = StatusChange(of, ids, MessageStatus.RECEIVED, MessageStatus.HELD)
            return TurnHeld(held, conversation, route.channel.bot, now)
        refusal = _refusal(conversation, route, credits, cost, now)
        if refusal is None and not ai_reachable:
            if not _exhausted(patience, batch[0].created_at, now):
                return TurnPostponed(ids)
            refusal = AI_UNAVAILABLE
        if refusal is not None:
            return TurnRefused(StatusChange(of, ids, MessageStatus.RECEIVED, MessageStatus.FAILED, refusal), now)
        return TurnStarted(
            user_id=conversation.user_id,
            conversation_id=conversation.conversation_id,
            phone_number_id=conversation.phone_number_id,
            hold=credits.hold(cost),
            batch=StatusChange(of, ids, MessageStatus.RECEIVED, MessageStatus.PROCESSING),
            at=now,
        )

    def wait_for_ai(self, reason: str, now: datetime, patience: timedelta | None) -> Turn | TurnFailed:
        """The AI could not be reached (an outage, not a refusal): the turn keeps its hold and its place in
        the conversation and is asked again later — until it has waited `patience` since it started; then
        it fails, nothing charged."""
        self._require(TurnStatus.AWAITING_AI)
        if _exhausted(patience, self.created_at, now):
            return self.fail(f"{AI_UNAVAILABLE}: {reason}", now)
        return evolve(self, updated_at=now)

    def wait_for_channel(self, now: datetime) -> Turn:
        """The reply waits for the channel's platform (down, or rate limiting us); the turn was looked at now."""
        self._require(TurnStatus.REPLYING)
        return evolve(self, updated_at=now)

    def resume(self, now: datetime) -> Turn:
        """Ask the AI again for a turn a stopped worker left waiting (it may have answered already)."""
        self._require(TurnStatus.AWAITING_AI)
        return evolve(self, attempts=self.attempts + 1, updated_at=now)

    def answer(
        self,
        reply: AIReply,
        conversation: Conversation,
        policy: ChannelPolicy,
        now: datetime,
        *,
        channel_reachable: bool = True,
    ) -> TurnAnswered | TurnFailed:
        """The AI's reply, split as the channel needs. An empty reply is a failure, not charged."""
        self._require(TurnStatus.AWAITING_AI)
        texts = policy.split(reply.text)
        if not texts:
            return self.fail("ai_failed: empty reply", now)
        # The first part is claimed at once when it may go out now: the usual reply has one part.
        may_go_out = channel_reachable and conversation.send_refusal(policy, now) is None
        first = MessageStatus.SENDING if may_go_out else MessageStatus.PENDING
        parts = (
            PartDraft(texts[0], first, reply.input_tokens, reply.output_tokens),
            *(PartDraft(text, MessageStatus.PENDING, None, None) for text in texts[1:]),
        )
        return TurnAnswered(
            turn=evolve(self, status=TurnStatus.REPLYING, response_id=reply.response_id, updated_at=now),
            before=self.status,
            parts=parts,
            batch=StatusChange(
                self.conversation_id, self.inbound_ids, MessageStatus.PROCESSING, MessageStatus.ANSWERED
            ),
            charge=CreditMovement.settle(self.user_id, self.credits_reserved, self.turn_id),
            last_item_id=reply.last_item_id,
        )

    def fail(self, reason: str, now: datetime) -> TurnFailed:
        """No answer: nothing is sent and nothing charged."""
        self._require(TurnStatus.AWAITING_AI)
        return TurnFailed(
            turn=evolve(self, status=TurnStatus.FAILED, failure_reason=reason, updated_at=now),
            before=self.status,
            release=CreditMovement.release(self.user_id, self.credits_reserved),
            batch=StatusChange(
                self.conversation_id, self.inbound_ids, MessageStatus.PROCESSING, MessageStatus.FAILED, reason
            ),
        )

    def finish(self, now: datetime) -> Turn:
        """Every part of the reply has its outcome."""
        self._require(TurnStatus.REPLYING)
        return evolve(self, status=TurnStatus.DONE, updated_at=now)

    def _require(self, *allowed: TurnStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"turn {self.turn_id} is {self.status}, not {' or '.join(allowed)}")


def _exhausted(patience: timedelta | None, since: datetime, now: datetime) -> bool:
    return patience is not None and now - since >= patience


def _refusal(conversation: Conversation, route: Route | None, credits: Credits, cost: int, now: datetime) -> str | None:
    if route is None or route.agent is None:
        return NO_AGENT
    if not conversation.window_open(route.channel.policy, now):
        return OUTSIDE_SERVICE_WINDOW
    if cost > credits.available:
        return INSUFFICIENT_CREDITS
    return None


class StepKind(enum.Enum):
    CLAIM = "claim"  # take the part for its one send attempt
    SEND = "send"  # the part is ours to send, now
    FAIL = "fail"  # the part will not be sent (`reason`)
    WAIT = "wait"  # the channel cannot be reached now: the part stays pending, the turn open
    FINISH = "finish"  # every part has its outcome: the turn ends


@frozen
class Step:
    kind: StepKind
    part: Message | None = None
    reason: str | None = None


@frozen
class PartChange:
    """A reply part moved on from `before`: claimed for its send, or its outcome. `turn_done` is the
    end of the turn (which was `turn_before`) when this was the last part without an outcome."""

    part: Message
    before: MessageStatus
    turn_done: Turn | None = None
    turn_before: TurnStatus | None = None


@frozen
class Reply:
    """A replying turn's parts on their way out, in order, each sent at most once.

    `claimed` are the parts this worker claimed and has not sent yet: only those are sent. A part
    found `sending` but not claimed here was claimed by a worker that stopped during the send; it may
    have gone out, so it is failed as unknown, never sent again. After a failed part the later parts
    are failed too: a reply with a hole in the middle would read wrong.
    """

    turn: Turn
    parts: tuple[Message, ...]
    claimed: frozenset[int] = field(factory=frozenset)

    def next_step(
        self,
        conversation: Conversation,
        policy: ChannelPolicy | None,
        now: datetime,
        *,
        channel_reachable: bool = True,
        patience: timedelta | None = None,
    ) -> Step | None:
        """What to do next; None when the turn is over. `policy` is None when the channel is gone.

        While the channel's platform cannot be reached, a pending part waits — until the turn has waited
        `patience` since it started; then it fails as `channel_unavailable`."""
        if self.turn.status is not TurnStatus.REPLYING:
            return None
        earlier_failed = False
        for part in self.parts:
            if part.status is MessageStatus.SENDING:
                if part.message_id in self.claimed:
                    return Step(StepKind.SEND, part)
                return Step(StepKind.FAIL, part, DELIVERY_OUTCOME_UNKNOWN)
            if part.status is MessageStatus.PENDING:
                refusal = EARLIER_PART_FAILED if earlier_failed else conversation.send_refusal(policy, now)
                if refusal is None and not channel_reachable:
                    if not _exhausted(patience, self.turn.created_at, now):
                        return Step(StepKind.WAIT, part)
                    refusal = CHANNEL_UNAVAILABLE
                if refusal is not None:
                    return Step(StepKind.FAIL, part, refusal)
                return Step(StepKind.CLAIM, part)
            earlier_failed = earlier_failed or part.status is MessageStatus.FAILED
        return Step(StepKind.FINISH)

    def claim(self, part: Message, now: datetime) -> tuple[Reply, PartChange]:
        """Take a pending part for its one send attempt: it is this worker's to send, and only its."""
        claimed = part.claim(now)
        return self._with(claimed, claimed=self.claimed | {part.message_id}), PartChange(claimed, part.status)

    def not_taken(self, part: Message, now: datetime) -> tuple[Reply, PartChange]:
        """The channel refused a claimed part before taking it (rate limited, briefly down: Meta says so, or
        the connection was never made). Nothing went out, so it goes back to pending, to be sent later."""
        if part.message_id not in self.claimed:
            raise InvalidTransition(f"message {part.message_id} was not claimed by this worker")
        pending = part.not_taken(now)
        return self._with(pending, claimed=self.claimed - {part.message_id}), PartChange(pending, part.status)

    def outcome(self, part: Message, now: datetime) -> tuple[Reply, PartChange]:
        """Record a part's outcome (`part` as it now is: sent or failed); the turn ends with its last part."""
        before = next((p for p in self.parts if p.message_id == part.message_id), None)
        if before is None or not before.status.awaiting_send or part.status.awaiting_send:
            raise InvalidTransition(
                f"message {part.message_id} is not the outcome of a part of turn {self.turn.turn_id}"
            )
        reply = self._with(part, claimed=self.claimed - {part.message_id})
        if any(p.status.awaiting_send for p in reply.parts):
            return reply, PartChange(part, before.status)
        done = self.turn.finish(now)
        return evolve(reply, turn=done), PartChange(part, before.status, done, self.turn.status)

    def finished(self, now: datetime) -> tuple[Reply, Turn]:
        done = self.turn.finish(now)
        return evolve(self, turn=done), done

    def _with(self, part: Message, *, claimed: frozenset[int]) -> Reply:
        if part.direction is not Direction.OUTBOUND or part.turn_id != self.turn.turn_id:
            raise InvalidTransition(f"message {part.message_id} is not a part of turn {self.turn.turn_id}")
        parts = tuple(part if p.message_id == part.message_id else p for p in self.parts)
        return evolve(self, parts=parts, claimed=claimed)
