"""The worker's job: answer the pending messages of one ordering scope, strictly in order.

A scope (one conversation, or one channel with ORDERING_SCOPE=phone_number) is processed by one
worker at a time, under a lock: lock → load → decide → AI → decide → save → send. Every decision is
the domain's (`domain.turns`); each is saved at once, conditional on the state it started from, so
a worker that dies anywhere leaves something the next one finishes without repeating what was done.
"""

from __future__ import annotations

import enum
import logging
from datetime import timedelta

from attrs import frozen

from application.ports.pipeline import TurnStore, Work
from application.ports.services import AIRequest, AIRequestFailed, AIResponder, BalanceCache, Clock, Locks
from application.reply_delivery import ReplyDelivery
from application.routes import ChannelRoutes
from domain.conversations import Conversation
from domain.handoff import ai_context
from domain.messages import ScopeKey
from domain.tenancy import Route
from domain.turns import NO_AGENT, Reply, Turn, TurnFailed, TurnHeld, TurnPostponed, TurnRefused, TurnStatus

log = logging.getLogger(__name__)


@frozen
class ProcessScope:
    scope_key: str
    correlation_id: str | None = None


@frozen
class TurnPolicy:
    credits_per_turn: int = 1
    #: Answer once the customer has been quiet this long (0: at once).
    coalesce_window: timedelta = timedelta(0)
    #: Send a read receipt for the customer's messages when a turn starts, where the channel has them.
    mark_as_read: bool = True
    #: Let the read receipt show the customer that a reply is being written, during the AI call (one call:
    #: WhatsApp carries the indicator only on the read receipt, so without `mark_as_read` nothing is sent).
    typing_indicator: bool = True
    #: How long a turn waits for an upstream that is down (OpenAI, the channel's platform) before its
    #: messages fail as unavailable (None: for as long as it takes).
    patience: timedelta | None = timedelta(hours=1)


class _Progress(enum.Enum):
    ENDED = "ended"  # a turn ended: answered, failed, or refused
    NOTHING = "nothing"  # nothing to do
    AGAIN = "again"  # look again at once: the customer may have written more, or the credits changed
    WAITING = "waiting"  # an upstream is down: the scope's work waits, and the sweep brings it back


class ProcessPendingMessages:
    def __init__(
        self,
        turns: TurnStore,
        locks: Locks,
        routes: ChannelRoutes,
        ai: AIResponder,
        delivery: ReplyDelivery,
        balances: BalanceCache,
        clock: Clock,
        policy: TurnPolicy,
    ) -> None:
        self._turns = turns
        self._locks = locks
        self._routes = routes
        self._ai = ai
        self._delivery = delivery
        self._balances = balances
        self._clock = clock
        self._policy = policy

    def __call__(self, command: ProcessScope) -> int:
        """Process until the scope has nothing pending; returns the number of turns that ended (answered,
        failed, or refused without an AI call). When another worker holds the scope this returns 0 at
        once: that worker picks up whatever is pending before it lets go (the re-check below)."""
        scope = ScopeKey.parse(command.scope_key)
        ended = 0
        while True:
            handle = self._locks.acquire(str(scope))
            if handle is None:
                return ended
            try:
                progress = self._advance(scope)
            finally:
                handle.release()
            ended += progress is _Progress.ENDED
            # A burst behind this turn, or a message whose trigger was turned away while we held the lock.
            if progress is _Progress.WAITING or not self._turns.has_pending(scope):
                return ended

    def _advance(self, scope: ScopeKey) -> _Progress:
        """Take the scope one turn further."""
        work = self._turns.next_work(scope)
        if work is None:
            return _Progress.NOTHING
        route = self._routes.find(work.conversation.phone_number_id)
        if route is not None and route.channel.deleted:
            route = None  # a deleted channel is gone: nothing more is answered or sent on it
        if work.turn is not None:  # left open by a worker that stopped: only lock holders open turns
            return self._drive(work.turn, work, route, resumed=True)
        wait = (Turn.due_at(work.messages, self._policy.coalesce_window) - self._clock.now()).total_seconds()
        if wait > 0:  # the customer may still be typing; look again afterwards (the batch may grow)
            self._clock.sleep(wait)
            return _Progress.AGAIN
        decision = Turn.start(
            work.conversation,
            work.messages,
            route,
            work.credits,
            self._policy.credits_per_turn,
            self._clock.now(),
            ai_reachable=self._ai.available,
            patience=self._policy.patience,
        )
        if isinstance(decision, TurnPostponed):
            return _Progress.WAITING
        if isinstance(decision, TurnHeld):
            if not self._turns.hold(decision):  # the bot was resumed or paused meanwhile: decide again
                return _Progress.AGAIN
            log.info("turn_held", extra={"messages": len(decision.batch.message_ids), **_about(work.conversation)})
            return _Progress.ENDED
        if isinstance(decision, TurnRefused):
            self._turns.refuse(decision)
            log.warning("turn_refused", extra={"reason": decision.reason, **_about(work.conversation)})
            return _Progress.ENDED
        turn = self._turns.start(decision)
        if turn is None:  # a concurrent turn spent the credits since they were read: decide again
            return _Progress.AGAIN
        assert route is not None
        if self._policy.mark_as_read:
            self._delivery.mark_read(route, work.messages[-1], typing=self._policy.typing_indicator)
        return self._drive(turn, work, route, resumed=False)

    def _drive(self, turn: Turn, work: Work, route: Route | None, *, resumed: bool) -> _Progress:
        if turn.status is TurnStatus.AWAITING_AI:
            reply = self._answer(turn, work, route, resumed=resumed)
            if not isinstance(reply, Reply):
                return reply
        else:
            reply = Reply(turn, work.messages)
        sent = self._delivery.send(reply, work.conversation, route, patience=self._policy.patience)
        return _Progress.ENDED if sent else _Progress.WAITING

    def _answer(self, turn: Turn, work: Work, route: Route | None, *, resumed: bool) -> Reply | _Progress:
        if route is None or route.agent is None:
            self._fail(turn.fail(NO_AGENT, self._clock.now()))
            return _Progress.ENDED
        if not self._ai.available:
            return self._wait_for_ai(turn, "the OpenAI circuit is open")
        conversation = work.conversation
        if resumed:
            turn = turn.resume(self._clock.now())
            if not self._turns.save_turn(turn, before=TurnStatus.AWAITING_AI):
                return _Progress.ENDED  # another worker took it on meanwhile
        try:
            ai_conversation = conversation.openai_conversation_id or self._link_ai(conversation)
            reply = self._ai.respond(
                AIRequest(
                    prompt_id=route.agent.prompt_id,
                    prompt_version=route.agent.prompt_version,
                    openai_conversation_id=ai_conversation,
                    inputs=tuple(m.text or "" for m in work.messages),
                    after_item_id=conversation.openai_last_item_id,
                    resumed=resumed,
                    context=ai_context(work.context),
                )
            )
        except AIRequestFailed as failure:
            if failure.retryable:
                return self._wait_for_ai(turn, failure.reason)
            self._fail(turn.fail(f"ai_failed: {failure.reason}", self._clock.now()))
            return _Progress.ENDED
        answered = turn.answer(
            reply,
            conversation,
            route.channel.policy,
            self._clock.now(),
            channel_reachable=self._delivery.reachable(route),
        )
        if isinstance(answered, TurnFailed):
            self._fail(answered)
            return _Progress.ENDED
        parts = self._turns.answer(answered)
        self._balances.invalidate(turn.user_id)
        if parts is None:  # another worker recorded this turn's answer first: it sends its own
            return _Progress.ENDED
        claimed = frozenset({parts[0].message_id}) if answered.first_part_claimed else frozenset()
        return Reply(answered.turn, parts, claimed)

    def _wait_for_ai(self, turn: Turn, reason: str) -> _Progress:
        """OpenAI is down: the turn keeps its place and its hold, and is asked again when the sweep brings it
        back — unless it has waited out the patience."""
        waiting = turn.wait_for_ai(reason, self._clock.now(), self._policy.patience)
        if isinstance(waiting, TurnFailed):
            self._fail(waiting)
            return _Progress.ENDED
        self._turns.save_turn(waiting, before=TurnStatus.AWAITING_AI)
        log.warning("turn_waits_for_ai", extra={"turn_id": turn.turn_id, "reason": reason})
        return _Progress.WAITING

    def _link_ai(self, conversation: Conversation) -> str:
        openai_conversation_id = self._ai.start_conversation(metadata=_about(conversation))
        self._turns.link_ai(conversation.link_ai(openai_conversation_id))
        return openai_conversation_id

    def _fail(self, failed: TurnFailed) -> None:
        if self._turns.fail(failed):
            self._balances.invalidate(failed.turn.user_id)
            log.warning("turn_failed", extra={"turn_id": failed.turn.turn_id, "reason": failed.turn.failure_reason})


def _about(conversation: Conversation) -> dict[str, str]:
    return {
        "user_id": conversation.user_id,
        "conversation_id": str(conversation.conversation_id),
        "phone_number_id": conversation.phone_number_id,
    }
