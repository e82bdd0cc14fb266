"""The worker's job: answer the pending messages of one ordering scope, strictly in order.

A scope (one conversation, or one channel with ORDERING_SCOPE=phone_number) is processed by one
worker at a time, under a lock. Its pending messages are answered in AI *turns*: the leading run
of pending messages of one conversation becomes one OpenAI call, one reply and one charge.

Each turn is a small state machine stored in Postgres, so a worker that dies anywhere leaves
something the next one can finish without repeating what was done:

    awaiting_ai  --AI answered-->  replying  --every part sent or failed-->  done
         \\--AI failed for good--> failed (reservation released)

Transitions are conditional on the previous state, and each outbound part moves
pending → sending before its one send attempt; a part found in `sending` by a later worker has
an unknown outcome and is failed rather than sent twice.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import (
    AIRequest,
    AIRequestFailed,
    AIResponder,
    BalanceCache,
    ChannelSenders,
    Clock,
    DeliveryFailed,
    Locks,
)
from application.routes import ChannelRoutes
from domain.messages import (
    TEXT_LIMITS,
    Conversation,
    Message,
    MessageStatus,
    ScopeKey,
    split_text,
    within_service_window,
)
from domain.tenancy import ChannelType, Route
from domain.turns import Turn, TurnStatus

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Channels whose platform allows free-form replies only within 24 h of the customer's message.
WINDOWED_CHANNELS = (ChannelType.WHATSAPP, ChannelType.INSTAGRAM)


class _Step(enum.Enum):
    IDLE = "idle"  # nothing pending
    WAITED = "waited"  # the customer may still be typing: we waited for the coalesce window
    TURN_ENDED = "turn_ended"  # the batch was refused (no credits, no agent, window closed)


@frozen
class _Started:
    turn: Turn
    route: Route | None
    inputs: tuple[str, ...]


@frozen
class ProcessScope:
    scope_key: str
    correlation_id: str | None = None


@frozen
class TurnPolicy:
    credits_per_turn: int = 1
    #: Wait until the customer has been quiet this long before answering (0: answer at once).
    coalesce_window: timedelta = timedelta(0)
    #: Send a read receipt (blue ticks) for the customer's messages when a turn starts.
    mark_as_read: bool = True


class ProcessPendingMessages:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        locks: Locks,
        routes: ChannelRoutes,
        ai: AIResponder,
        senders: ChannelSenders,
        balances: BalanceCache,
        clock: Clock,
        policy: TurnPolicy,
        sleep: Callable[[float], None] = time.sleep,
        single_step_uow: Callable[[], UnitOfWork] | None = None,
    ) -> None:
        """`single_step_uow`, when given, serves the blocks that read, or change one thing in one
        repository call (most of a turn's): an adapter may run those without a transaction around them.
        Blocks with several changes that must stand or fall together use `uow`."""
        self._uow = uow
        self._single = single_step_uow or uow
        self._locks = locks
        self._routes = routes
        self._ai = ai
        self._senders = senders
        self._balances = balances
        self._clock = clock
        self._policy = policy
        self._sleep = sleep

    def __call__(self, command: ProcessScope) -> int:
        """Process until the scope has nothing pending; returns the number of turns that ended
        (answered, failed, or refused without an AI call).

        When another worker holds the scope this returns 0 at once: that worker picks up
        whatever is pending before it lets go (see the re-check after release).
        """
        scope = ScopeKey.parse(command.scope_key)
        ended = 0
        while True:
            handle = self._locks.acquire(str(scope))
            if handle is None:
                return ended
            try:
                ended += self._advance(scope)
            finally:
                handle.release()
            # More may be pending: a burst behind this turn, or a message whose trigger was turned
            # away because we held the lock. Either way it is ours.
            with self._single() as uow:
                if not uow.messages.has_pending(scope):
                    return ended

    def _advance(self, scope: ScopeKey) -> int:
        """Take the scope one turn further; returns 1 when a turn ended, 0 when there was nothing to do.

        A turn left open by a worker that died comes first: only a lock holder opens turns and it
        drives each to its end, so an open turn found here is an orphan.
        """
        with self._single() as uow:
            left_open = uow.turns.open_turn(scope)
            batch = [] if left_open else uow.messages.pending_batch(scope)
            conversation_id = left_open.conversation_id if left_open else batch[0].conversation_id if batch else None
            conversation = uow.conversations.get(conversation_id) if conversation_id is not None else None
        if conversation is None:
            return 0
        if left_open is not None:
            self._drive(left_open, conversation, self._routes.find(conversation.phone_number_id), None)
            return 1
        started = self._start_turn(batch, conversation)
        if isinstance(started, _Started):
            self._drive(started.turn, conversation, started.route, started.inputs)
        return 0 if started is _Step.WAITED else 1

    def _drive(
        self, turn: Turn, conversation: Conversation, route: Route | None, inputs: tuple[str, ...] | None
    ) -> None:
        """Take a turn to its end. `inputs` is None when the turn was left open by another worker."""
        if turn.status is TurnStatus.AWAITING_AI:
            answered = self._ask_ai(turn, conversation, route, inputs)
            if answered is None:
                return
            parts, claimed = answered
        else:
            with self._single() as uow:
                parts, claimed = uow.messages.outbound_for_turn(turn.turn_id), None
        self._send_reply(turn, conversation, route, parts, claimed)

    def _start_turn(self, batch: list[Message], conversation: Conversation) -> _Started | _Step:
        now = self._clock.now()
        wait = (batch[-1].created_at + self._policy.coalesce_window - now).total_seconds()
        if wait > 0:
            # The customer may still be typing: wait out the window, then look again (the batch may grow).
            self._sleep(wait)
            return _Step.WAITED
        # Looked up outside any transaction: a cache miss opens a unit of work of its own.
        route = self._routes.find(conversation.phone_number_id)
        refusal = self._refusal(conversation, route)
        batch_ids = [m.message_id for m in batch]
        turn: Turn | None = None
        # One change either way: the funded start (one statement), or, without it, the refusal.
        with self._single() as uow:
            if refusal is None:
                turn = uow.turns.start_funded(
                    user_id=conversation.user_id,
                    conversation_id=conversation.conversation_id,
                    phone_number_id=conversation.phone_number_id,
                    inbound_ids=batch_ids,
                    credits_reserved=self._policy.credits_per_turn,
                    now=now,
                )
                if turn is None:
                    refusal = "insufficient_credits"
            if refusal is not None:
                uow.messages.mark_inbound(batch_ids, MessageStatus.FAILED, now, failure_reason=refusal)
            uow.commit()
        if refusal is not None or turn is None:
            log.warning(
                "turn_refused",
                extra={
                    "reason": refusal,
                    "conversation_id": conversation.conversation_id,
                    "user_id": conversation.user_id,
                },
            )
            return _Step.TURN_ENDED
        assert route is not None
        self._mark_read(route, batch[-1])
        return _Started(turn, route, tuple(m.text or "" for m in batch))

    def _refusal(self, conversation: Conversation, route: Route | None) -> str | None:
        if route is None or route.agent is None:
            return "no_agent"
        if route.channel.type in WINDOWED_CHANNELS and not within_service_window(
            conversation.last_customer_message_at, self._clock.now()
        ):
            return "outside_service_window"
        return None

    def _ask_ai(
        self, turn: Turn, conversation: Conversation, route: Route | None, inputs: tuple[str, ...] | None
    ) -> tuple[list[Message], int | None] | None:
        """The reply's parts and the id of the part already claimed for sending, or None when the
        turn ended without a reply (it failed)."""
        if route is None or route.agent is None:
            self._fail_turn(turn, "no_agent")
            return None
        resumed = inputs is None
        try:
            openai_conversation_id = conversation.openai_conversation_id or self._start_ai_conversation(conversation)
            if inputs is None:
                with self._single() as uow:
                    turn = uow.turns.note_attempt(turn.turn_id, self._clock.now())
                    inputs = tuple(m.text or "" for m in uow.messages.get_many(turn.inbound_ids))
                    uow.commit()
            reply = self._ai.respond(
                AIRequest(
                    prompt_id=route.agent.prompt_id,
                    prompt_version=route.agent.prompt_version,
                    openai_conversation_id=openai_conversation_id,
                    inputs=inputs,
                    after_item_id=conversation.openai_last_item_id,
                    resumed=resumed,
                )
            )
        except AIRequestFailed as failure:
            self._fail_turn(turn, f"ai_failed: {failure.reason}")
            return None
        texts = split_text(reply.text, TEXT_LIMITS[route.channel.type])
        if not texts:
            self._fail_turn(turn, "ai_failed: empty reply")
            return None
        now = self._clock.now()
        # The first part is claimed for its one send attempt in the same transaction (the usual reply
        # has one part): committed as `sending` right before the send, exactly as a separate claim would be.
        send_first = self._sendable(conversation, route) is None
        with self._single() as uow:
            parts = uow.turns.record_answer(turn, conversation, reply, texts, now, claim_first=send_first)
            if parts is None:
                # Another worker recorded this turn's reply first; theirs stands and is what gets sent.
                return uow.messages.outbound_for_turn(turn.turn_id), None
            uow.commit()
        self._balances.invalidate(turn.user_id)
        return parts, parts[0].message_id if send_first else None

    def _start_ai_conversation(self, conversation: Conversation) -> str:
        openai_conversation_id = self._ai.start_conversation(
            metadata={
                "user_id": conversation.user_id,
                "conversation_id": str(conversation.conversation_id),
                "phone_number_id": conversation.phone_number_id,
            }
        )
        with self._single() as uow:
            uow.conversations.set_openai_conversation(conversation.conversation_id, openai_conversation_id)
            uow.commit()
        return openai_conversation_id

    def _fail_turn(self, turn: Turn, reason: str) -> None:
        now = self._clock.now()
        with self._uow() as uow:
            if not uow.turns.fail(turn.turn_id, reason, now):
                return
            uow.credits.release(turn.user_id, turn.credits_reserved, now)
            uow.messages.mark_inbound(turn.inbound_ids, MessageStatus.FAILED, now, failure_reason=reason)
            uow.commit()
        self._balances.invalidate(turn.user_id)
        log.warning("turn_failed", extra={"turn_id": turn.turn_id, "reason": reason})

    def _send_reply(
        self,
        turn: Turn,
        conversation: Conversation,
        route: Route | None,
        parts: list[Message],
        claimed: int | None,
    ) -> None:
        """Send each part once, in order; the last part's outcome and the end of the turn are one transaction."""
        earlier_failed = False
        for index, part in enumerate(parts):
            closing = turn if index == len(parts) - 1 else None
            if part.message_id == claimed:
                earlier_failed = not self._deliver(part, conversation, route, closing)
            elif part.status is MessageStatus.SENDING:
                # A worker stopped during this very send: it may have gone out. Never send twice.
                self._close_part(part, closing, failure=(None, "delivery_outcome_unknown"))
                earlier_failed = True
            elif part.status is MessageStatus.PENDING:
                refusal = "earlier_part_failed" if earlier_failed else self._sendable(conversation, route)
                if refusal is not None:
                    self._close_part(part, closing, failure=(None, refusal))
                    earlier_failed = True
                    continue
                with self._single() as uow:
                    mine = uow.messages.start_sending(part.message_id, self._clock.now())
                    uow.commit()
                if mine:
                    earlier_failed = not self._deliver(part, conversation, route, closing)
                elif closing is not None:
                    self._close_part(None, closing)
            else:
                earlier_failed = earlier_failed or part.status is MessageStatus.FAILED
                if closing is not None:
                    self._close_part(None, closing)
        if not parts:
            self._close_part(None, turn)

    def _sendable(self, conversation: Conversation, route: Route | None) -> str | None:
        """Why a part may not be sent now, or None."""
        if route is None:
            return "channel_removed"
        if route.channel.type in WINDOWED_CHANNELS and not within_service_window(
            conversation.last_customer_message_at, self._clock.now()
        ):
            return "outside_service_window"
        return None

    def _deliver(self, part: Message, conversation: Conversation, route: Route | None, closing: Turn | None) -> bool:
        """The one send attempt of a part claimed as `sending`; True when the channel took it."""
        assert route is not None
        try:
            sender = self._senders.for_type(route.channel.type)
            platform_message_id = sender.send_text(route.channel, conversation.customer_id, part.text or "")
        except DeliveryFailed as failure:
            self._close_part(part, closing, failure=(failure.code, failure.reason))
            return False
        self._close_part(part, closing, sent=platform_message_id)
        return True

    def _close_part(
        self,
        part: Message | None,
        closing: Turn | None,
        *,
        sent: str | None = None,
        failure: tuple[str | None, str] | None = None,
    ) -> None:
        """Record a part's outcome and, with `closing`, the end of its turn, in one step."""
        now = self._clock.now()
        finishing = closing.turn_id if closing is not None else None
        with self._single() as uow:
            if part is not None and sent is not None:
                uow.messages.record_sent(part.message_id, sent, now, finishing=finishing)
            elif part is not None and failure is not None:
                uow.messages.record_send_failure(part.message_id, failure[0], failure[1], now, finishing=finishing)
            elif finishing is not None:
                uow.turns.finish(finishing, now)
            uow.commit()
        if part is not None and failure is not None:
            log.warning(
                "delivery_failed", extra={"message_id": part.message_id, "code": failure[0], "reason": failure[1]}
            )

    def _mark_read(self, route: Route, last: Message) -> None:
        if not self._policy.mark_as_read or last.platform_message_id is None:
            return
        if route.channel.type is not ChannelType.WHATSAPP:
            return
        try:
            self._senders.for_type(route.channel.type).mark_read(route.channel, last.platform_message_id)
        except DeliveryFailed as failure:
            # A read receipt is a courtesy; failing it must not hold up the answer.
            log.info("mark_read_failed", extra={"code": failure.code, "reason": failure.reason})


def _required(value: _T | None) -> _T:
    if value is None:
        raise LookupError("a row the turn depends on is gone")
    return value
