"""Retrying a failed message, on the in-memory adapters: a customer's message answered after all, in
the conversation's order; a refused reply part sent once more; anything else left alone."""

from __future__ import annotations

import pytest
from attrs import evolve

from application.ports.services import DeliveryFailed
from application.use_cases.retry_message import RetryMessage, RetryMessageCommand, RetryOutcome
from application.use_cases.top_up_credits import TopUpCommand
from domain.errors import NotFound, RetryRefused
from domain.messages import DELIVERY_OUTCOME_UNKNOWN, Message, MessageStatus
from domain.turns import TurnStatus
from tests.unit.conftest import App, MakeApp
from tests.unit.fakes import DownQueue

SCOPE = "conversation:1"


def _retry(app: App, message: Message, *, queue: object = None) -> RetryOutcome:
    use_case = RetryMessage(
        app.uow,
        app.message_store,
        app.turn_store,
        app.routes,
        app.senders,
        queue or app.queue,  # type: ignore[arg-type]
        app.clock,
        ordering=app.ordering,
    )
    return use_case(RetryMessageCommand(app.user.user_id, message.message_id))


def _stored(app: App, message: Message) -> Message:
    return app.store.tables.messages[message.message_id]


def _failed_by_the_ai(app: App, text: str = "Do you ship to Canada?") -> Message:
    app.ai.fail_next(reason="400 bad request")  # a refusal, not an outage: failed for good
    app.receive(text)
    app.drain()
    [failed] = [m for m in app.inbound_messages() if m.text == text]
    assert (failed.status, failed.failure_reason) == (MessageStatus.FAILED, "ai_failed: 400 bad request")
    return failed


def _refused_part(app: App) -> Message:
    app.sender.failures.append(DeliveryFailed("message undeliverable", code="131026"))
    app.receive("Where is my order?")
    app.drain()
    [part] = app.outbound_messages()
    assert (part.status, part.failure_code) == (MessageStatus.FAILED, "131026")
    return part


# --- a customer's message ----------------------------------------------------------------------


def test_a_message_the_ai_failed_is_answered_once_after_a_retry(app: App) -> None:
    failed = _failed_by_the_ai(app)

    outcome = _retry(app, failed)

    assert outcome.retried is True
    assert (outcome.message.status, outcome.message.failure_reason) == (MessageStatus.RECEIVED, None)
    assert list(app.queue.jobs) == [SCOPE]
    app.drain()
    assert _stored(app, failed).status is MessageStatus.ANSWERED
    assert app.sent_texts() == ["reply to: Do you ship to Canada?"]
    assert len(app.charges()) == 1


def test_a_retried_message_joins_the_conversations_pending_messages_in_order(app: App) -> None:
    failed = _failed_by_the_ai(app, "first")
    app.receive("second")  # stored, its job not run yet

    _retry(app, failed)
    app.drain()

    assert app.ai.inputs[-1] == ("first", "second")
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.ANSWERED, MessageStatus.ANSWERED]
    assert app.sent_texts() == ["reply to: first | second"]


def test_a_message_refused_for_lack_of_credits_is_answered_after_a_top_up_and_a_retry(make_app: MakeApp) -> None:
    app = make_app(credits=0)
    app.receive("hello")
    app.drain()
    [refused] = app.inbound_messages()
    assert refused.failure_reason == "insufficient_credits"
    app.top_up(TopUpCommand(user_id=app.user.user_id, amount=5, reason="top-up"))

    _retry(app, refused)
    app.drain()

    assert _stored(app, refused).status is MessageStatus.ANSWERED
    assert app.sent_texts() == ["reply to: hello"]


def test_a_retry_stays_stored_when_the_queue_is_down_for_the_sweep_to_find(app: App) -> None:
    failed = _failed_by_the_ai(app)
    down = DownQueue()

    outcome = _retry(app, failed, queue=down)

    assert outcome.retried is True
    assert down.attempts == [SCOPE]
    assert _stored(app, failed).status is MessageStatus.RECEIVED


def test_a_skipped_message_is_not_retried(app: App) -> None:
    app.receive(None, content_type="image", skip_reason="image messages are not answered")
    [skipped] = app.inbound_messages()

    outcome = _retry(app, skipped)

    assert outcome == RetryOutcome(skipped, retried=False)
    assert not app.queue.jobs


# --- a reply part ------------------------------------------------------------------------------


def test_a_refused_reply_part_is_sent_once_more(app: App) -> None:
    part = _refused_part(app)

    outcome = _retry(app, part)

    [sent] = app.sender.sent
    assert outcome.retried is True
    assert (outcome.message.status, outcome.message.platform_message_id) == (
        MessageStatus.SENT,
        sent.platform_message_id,
    )
    assert (outcome.message.failure_code, outcome.message.failure_reason) == (None, None)
    assert _stored(app, part) == outcome.message
    assert not app.queue.jobs


def test_a_second_retry_sends_nothing_and_says_so(app: App) -> None:
    part = _refused_part(app)
    _retry(app, part)

    again = _retry(app, part)

    assert again.retried is False
    assert again.message.status is MessageStatus.SENT
    assert len(app.sender.sent) == 1


def test_a_retry_the_channel_refuses_again_leaves_the_part_failed_with_the_new_code(app: App) -> None:
    part = _refused_part(app)
    app.sender.failures.append(DeliveryFailed("rate limited", code="130429", retry_safe=True))

    outcome = _retry(app, part)

    assert outcome.retried is True
    assert (outcome.message.status, outcome.message.failure_code) == (MessageStatus.FAILED, "130429")
    assert _stored(app, part).status is MessageStatus.FAILED
    # Nothing went out, so it may be retried again.
    assert _retry(app, part).message.status is MessageStatus.SENT


def test_a_part_that_may_have_gone_out_is_refused(app: App) -> None:
    part = _refused_part(app)
    app.store.tables.messages[part.message_id] = evolve(part, failure_reason=DELIVERY_OUTCOME_UNKNOWN)

    with pytest.raises(RetryRefused) as refused:
        _retry(app, part)

    assert refused.value.code == "not_retryable"
    assert not app.sender.sent


def test_no_retry_outside_the_service_window(app: App) -> None:
    part = _refused_part(app)
    app.clock.advance(hours=25)

    with pytest.raises(RetryRefused) as refused:
        _retry(app, part)

    assert refused.value.code == "outside_service_window"
    assert not app.sender.sent
    assert _stored(app, part).status is MessageStatus.FAILED


def test_no_retry_while_the_channels_platform_is_waited_out(app: App) -> None:
    part = _refused_part(app)
    app.sender.available = False

    with pytest.raises(RetryRefused) as refused:
        _retry(app, part)

    assert refused.value.code == "channel_unavailable"
    assert _stored(app, part).status is MessageStatus.FAILED


# --- either --------------------------------------------------------------------------------------


def test_no_retry_in_an_archived_conversation(app: App) -> None:
    failed = _failed_by_the_ai(app)
    [conversation] = app.conversations()
    app.store.tables.conversations[conversation.conversation_id] = conversation.archive()

    with pytest.raises(RetryRefused) as refused:
        _retry(app, failed)

    assert refused.value.code == "conversation_archived"
    assert _stored(app, failed).status is MessageStatus.FAILED
    assert not app.queue.jobs


def test_another_tenants_message_is_not_found(app: App) -> None:
    failed = _failed_by_the_ai(app)
    use_case = RetryMessage(
        app.uow,
        app.message_store,
        app.turn_store,
        app.routes,
        app.senders,
        app.queue,
        app.clock,
        ordering=app.ordering,
    )

    with pytest.raises(NotFound):
        use_case(RetryMessageCommand("usr_someone_else", failed.message_id))

    assert _stored(app, failed).status is MessageStatus.FAILED


def test_of_two_retries_decided_from_the_same_failure_only_one_is_saved(app: App) -> None:
    part = _refused_part(app)
    claimed = part.retry(app.clock.now())
    assert claimed is not None

    assert app.message_store.save_retry(part, claimed) is True
    assert app.message_store.save_retry(part, claimed) is False


def test_a_part_of_a_reply_still_being_sent_is_left_to_the_worker(app: App) -> None:
    part = _refused_part(app)
    [turn] = app.turns()
    app.store.tables.turns[turn.turn_id] = evolve(turn, status=TurnStatus.REPLYING)

    with pytest.raises(RetryRefused) as refused:
        _retry(app, part)

    assert refused.value.code == "reply_in_progress"
    assert not app.sender.sent
