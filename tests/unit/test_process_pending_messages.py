"""The worker's job: pending messages of a scope answered in order, in AI turns, each charged once and
sent at most once, whatever stops the worker on the way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from adapters.memory.services import SystemClock
from application.ports.services import AIRequest, DeliveryFailed
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.process_pending_messages import TurnPolicy
from domain.channels import ChannelType
from domain.credits import CreditMovement
from domain.messages import MessageStatus, OrderingScope
from domain.turns import Turn, TurnStarted, TurnStatus
from tests.unit.conftest import CUSTOMER, PHONE_NUMBER_ID, PROMPT_ID, PROMPT_VERSION, App, MakeApp
from tests.unit.fakes import LocksWithReleaseHook

SCOPE = "conversation:1"


# --- the ordinary turn -------------------------------------------------------------------------


def test_one_message_gets_one_ai_call_with_the_agents_prompt(app: App) -> None:
    app.receive("Do you ship to Canada?")

    app.drain()

    [request] = app.ai.requests
    assert (request.prompt_id, request.prompt_version) == (PROMPT_ID, PROMPT_VERSION)
    assert request.inputs == ("Do you ship to Canada?",)
    assert request.openai_conversation_id == "conv_1"
    assert request.resumed is False
    assert app.ai.started == [{"user_id": app.user.user_id, "conversation_id": "1", "phone_number_id": PHONE_NUMBER_ID}]
    assert app.conversations()[0].openai_conversation_id == "conv_1"


def test_reply_is_sent_to_the_customer_and_both_sides_are_stored(app: App) -> None:
    app.receive("Do you ship to Canada?", wamid="wamid.in")

    app.drain()

    [sent] = app.sender.sent
    assert (sent.phone_number_id, sent.recipient_id, sent.text) == (
        PHONE_NUMBER_ID,
        CUSTOMER,
        "reply to: Do you ship to Canada?",
    )
    [inbound] = app.inbound_messages()
    [outbound] = app.outbound_messages()
    assert inbound.status is MessageStatus.ANSWERED
    assert (outbound.status, outbound.platform_message_id, outbound.text) == (
        MessageStatus.SENT,
        sent.platform_message_id,
        sent.text,
    )
    assert outbound.sequence_no > inbound.sequence_no
    assert (outbound.input_tokens, outbound.output_tokens) == (10, 5)
    assert app.sender.read == ["wamid.in"]
    [turn] = app.turns()
    assert (turn.status, turn.inbound_ids) == (TurnStatus.DONE, (inbound.message_id,))


def test_an_answered_turn_charges_one_credit_in_the_ledger(app: App) -> None:
    app.receive("Hi")

    app.drain()

    credits = app.credits()
    assert (credits.balance, credits.reserved) == (9, 0)
    [charge] = app.charges()
    assert (charge.amount, charge.balance_after, charge.turn_id) == (-1, 9, app.turns()[0].turn_id)


def test_openai_conversation_is_created_once_and_reused_on_later_turns(app: App) -> None:
    app.receive("first")
    app.drain()
    app.receive("second")
    app.drain()

    assert len(app.ai.started) == 1
    assert [r.openai_conversation_id for r in app.ai.requests] == ["conv_1", "conv_1"]
    assert app.ai.requests[1].after_item_id == "item_1"


def test_burst_of_messages_is_answered_as_one_turn_in_order(app: App) -> None:
    for text in ["Hi", "I want to book a demo", "Tomorrow 10am?"]:
        app.receive(text)

    app.drain()

    assert app.ai.inputs == [("Hi", "I want to book a demo", "Tomorrow 10am?")]
    assert app.sent_texts() == ["reply to: Hi | I want to book a demo | Tomorrow 10am?"]
    assert len(app.charges()) == 1
    assert app.credits().balance == 9
    assert {m.status for m in app.inbound_messages()} == {MessageStatus.ANSWERED}


def test_each_conversation_gets_its_own_turn_and_reply(app: App) -> None:
    app.receive("from A", customer="1555000A")
    app.receive("from B", customer="1555000B")

    app.drain()

    assert sorted(app.ai.inputs) == [("from A",), ("from B",)]
    assert len({r.openai_conversation_id for r in app.ai.requests}) == 2
    assert sorted((s.recipient_id, s.text) for s in app.sender.sent) == [
        ("1555000A", "reply to: from A"),
        ("1555000B", "reply to: from B"),
    ]
    assert app.credits().balance == 8


def test_phone_number_ordering_answers_turns_in_received_order_across_conversations(make_app: MakeApp) -> None:
    app = make_app(ordering=OrderingScope.PHONE_NUMBER)
    app.receive("A1", customer="1555000A")
    app.receive("B1", customer="1555000B")
    app.receive("A2", customer="1555000A")
    app.receive("A3", customer="1555000A")

    app.drain()

    # the batch is cut where another conversation's message comes between
    assert app.ai.inputs == [("A1",), ("B1",), ("A2", "A3")]
    assert [s.recipient_id for s in app.sender.sent] == ["1555000A", "1555000B", "1555000A"]


def test_conversation_ordering_batches_a_customers_messages_across_other_customers(app: App) -> None:
    app.receive("A1", customer="1555000A")
    app.receive("B1", customer="1555000B")
    app.receive("A2", customer="1555000A")

    app.drain()

    assert sorted(app.ai.inputs) == [("A1", "A2"), ("B1",)]


def test_scope_with_nothing_pending_does_nothing(app: App) -> None:
    assert app.run(SCOPE) == 0
    assert app.ai.requests == []


def test_job_returns_the_number_of_turns_it_handled(app: App) -> None:
    app.receive("Hi")
    app.receive("Hi", customer="15550002")

    assert app.run(SCOPE) == 1


# --- one worker per scope ------------------------------------------------------------------------


def test_scope_locked_by_another_worker_is_left_alone(app: App) -> None:
    app.receive("Hi")
    other_worker = app.locks.acquire(SCOPE)
    assert other_worker is not None

    assert app.run(SCOPE) == 0

    assert app.ai.requests == []
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.RECEIVED]
    other_worker.release()
    app.run(SCOPE)
    assert app.sent_texts() == ["reply to: Hi"]


def test_message_arriving_during_a_turn_is_answered_by_the_worker_holding_the_scope(app: App) -> None:
    turned_away: list[int] = []

    def customer_writes_again(_: AIRequest) -> None:
        app.receive("one more thing")
        turned_away.append(app.run(SCOPE))  # the job its enqueue triggered, run meanwhile

    app.ai.during_next_call(customer_writes_again)
    app.receive("first")

    app.run(SCOPE)

    assert turned_away == [0]
    assert app.ai.inputs == [("first",), ("one more thing",)]
    assert app.sent_texts() == ["reply to: first", "reply to: one more thing"]


def test_message_arriving_as_the_lock_is_released_is_picked_up_by_the_re_check(make_app: MakeApp) -> None:
    locks = LocksWithReleaseHook()
    app = make_app(locks=locks)
    app.receive("first")
    app.queue.jobs.clear()
    locks.before_next_release.append(lambda: app.receive("late"))

    app.run(SCOPE)

    assert app.ai.inputs == [("first",), ("late",)]
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.ANSWERED, MessageStatus.ANSWERED]
    assert not app.locks.is_held(SCOPE)


# --- credits -------------------------------------------------------------------------------------


def test_without_credits_the_message_fails_and_no_ai_call_is_made(make_app: MakeApp) -> None:
    app = make_app(credits=0)
    app.receive("Hi")

    app.drain()

    assert app.ai.requests == []
    assert app.sender.sent == []
    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (MessageStatus.FAILED, "insufficient_credits")
    credits = app.credits()
    assert (credits.balance, credits.reserved) == (0, 0)


def test_balance_never_goes_negative_when_credits_run_out(make_app: MakeApp) -> None:
    app = make_app(credits=2)
    for customer in ["15550001", "15550002", "15550003"]:
        app.receive("Hi", customer=customer)

    app.drain()

    assert len(app.sender.sent) == 2
    assert sorted(m.failure_reason or "" for m in app.inbound_messages()) == ["", "", "insufficient_credits"]
    credits = app.credits()
    assert (credits.balance, credits.reserved) == (0, 0)
    assert [e.balance_after for e in app.charges()] == [0, 1]


def test_a_turn_whose_credits_were_spent_meanwhile_is_decided_again_and_refused(make_app: MakeApp) -> None:
    app = make_app(credits=1)
    app.receive("Hi")
    start = app.turn_store.start

    def another_worker_takes_the_last_credit_first(started: TurnStarted) -> Turn | None:
        with app.store.atomic() as tables:
            tables.move_credits(CreditMovement.hold(app.user.user_id, 1), app.clock.now())
        app.turn_store.start = start  # type: ignore[method-assign]
        return start(started)

    app.turn_store.start = another_worker_takes_the_last_credit_first  # type: ignore[method-assign]

    app.drain()

    assert app.ai.requests == []
    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (MessageStatus.FAILED, "insufficient_credits")
    assert (app.credits().balance, app.credits().reserved) == (1, 1)  # only the other worker's hold


def test_answering_invalidates_the_cached_balance(app: App) -> None:
    assert app.queries.balance(app.user.user_id).balance == 10
    app.receive("Hi")

    app.drain()

    assert app.queries.balance(app.user.user_id).balance == 9


# --- AI failures ---------------------------------------------------------------------------------


def test_ai_failure_fails_the_turn_releases_the_credits_and_sends_nothing(app: App) -> None:
    app.ai.fail_next(reason="rate limited after 3 retries")
    app.receive("Hi")

    app.drain()

    [turn] = app.turns()
    assert turn.status is TurnStatus.FAILED
    [inbound] = app.inbound_messages()
    assert inbound.status is MessageStatus.FAILED
    assert inbound.failure_reason == "ai_failed: rate limited after 3 retries"
    credits = app.credits()
    assert (credits.balance, credits.reserved) == (10, 0)
    assert app.charges() == []
    assert app.sender.sent == []
    assert app.outbound_messages() == []


def test_ai_failure_does_not_block_the_next_message(app: App) -> None:
    app.ai.fail_next()
    app.ai.during_next_call(lambda _: app.receive("hello?"))
    app.receive("Hi")

    app.drain()

    assert app.ai.inputs == [("Hi",), ("hello?",)]
    assert app.sent_texts() == ["reply to: hello?"]
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.FAILED, MessageStatus.ANSWERED]
    assert app.credits().balance == 9


def test_ai_failure_when_starting_the_conversation_fails_the_turn(app: App) -> None:
    def refuse(*, metadata: dict[str, str]) -> str:
        from application.ports.services import AIRequestFailed

        raise AIRequestFailed("conversations API down")

    app.ai.start_conversation = refuse  # type: ignore[method-assign]
    app.receive("Hi")

    app.drain()

    [inbound] = app.inbound_messages()
    assert inbound.failure_reason == "ai_failed: conversations API down"
    assert app.ai.requests == []
    assert app.credits().reserved == 0


def test_empty_ai_reply_fails_the_turn_without_charging(app: App) -> None:
    app.ai.reply_next("   ")
    app.receive("Hi")

    app.drain()

    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (MessageStatus.FAILED, "ai_failed: empty reply")
    assert app.sender.sent == []
    assert (app.credits().balance, app.credits().reserved) == (10, 0)


# --- sending -------------------------------------------------------------------------------------


def test_delivery_failure_is_stored_with_the_channels_code_and_not_retried(app: App) -> None:
    app.sender.failures.append(DeliveryFailed("Message undeliverable: re-engagement message", code="131047"))
    app.receive("Hi")

    app.drain()

    [outbound] = app.outbound_messages()
    assert (outbound.status, outbound.failure_code) == (MessageStatus.FAILED, "131047")
    assert outbound.failure_reason == "Message undeliverable: re-engagement message"
    assert app.turns()[0].status is TurnStatus.DONE
    assert app.inbound_messages()[0].status is MessageStatus.ANSWERED
    assert app.credits().balance == 9  # the AI answered: the charge stands

    assert app.run(SCOPE) == 0
    assert app.sender.sent == []
    assert app.outbound_messages()[0].status is MessageStatus.FAILED


def test_long_reply_is_sent_in_several_parts_in_order(app: App) -> None:
    paragraphs = [" ".join(f"p{n}w{i}" for i in range(700)) for n in range(3)]  # ~4.3k chars each
    long_reply = "\n\n".join(paragraphs)
    app.ai.reply_next(long_reply)
    app.receive("Tell me everything")

    app.drain()

    texts = app.sent_texts()
    assert len(texts) >= 3
    assert all(len(text) <= 4096 for text in texts)
    assert " ".join(texts).split() == long_reply.split()
    outbound = app.outbound_messages()
    assert [m.text for m in sorted(outbound, key=lambda m: m.sequence_no)] == texts
    assert {m.status for m in outbound} == {MessageStatus.SENT}
    assert len(app.charges()) == 1


def test_later_parts_are_not_sent_after_a_part_failed(app: App) -> None:
    app.ai.reply_next("x" * 5000)
    app.sender.failures.append(DeliveryFailed("Rate limit hit", code="131056"))
    app.receive("Hi")

    app.drain()

    assert app.sender.sent == []
    assert [(m.failure_code, m.failure_reason) for m in app.outbound_messages()] == [
        ("131056", "Rate limit hit"),
        (None, "earlier_part_failed"),
    ]


# --- the 24-hour window --------------------------------------------------------------------------


def test_message_outside_the_service_window_fails_without_an_ai_call(app: App) -> None:
    app.receive("Hi")
    app.clock.advance(hours=24, minutes=1)

    app.drain()

    assert app.ai.requests == []
    assert app.sender.sent == []
    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (MessageStatus.FAILED, "outside_service_window")
    assert (app.credits().balance, app.credits().reserved) == (10, 0)


def test_message_just_inside_the_service_window_is_answered(app: App) -> None:
    app.receive("Hi")
    app.clock.advance(hours=23, minutes=59)

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]


@pytest.mark.parametrize(("later", "answered"), [(timedelta(hours=23, minutes=59), True), (timedelta(hours=24), False)])
def test_the_service_window_is_judged_by_the_real_clock(make_app: MakeApp, later: timedelta, answered: bool) -> None:
    with freeze_time("2026-05-01 10:00:00", tz_offset=0) as frozen:
        app = make_app(clock=SystemClock())
        app.receive("Hi")  # sent now, by the real clock
        frozen.tick(later)

        app.drain()

    assert app.sent_texts() == (["reply to: Hi"] if answered else [])
    if not answered:
        assert app.inbound_messages()[0].failure_reason == "outside_service_window"


def test_web_chat_has_no_service_window(app: App) -> None:
    channel = app.add_channel(
        AddChannelCommand(user_id=app.user.user_id, type=ChannelType.WEBCHAT, external_number="shop.example")
    )
    app.create_agent(
        CreateAgentCommand(
            user_id=app.user.user_id, name="Site", prompt_id="pmpt_site", phone_number_id=channel.phone_number_id
        )
    )
    app.receive("Hi", customer="visitor_1", phone_number_id=channel.phone_number_id)
    app.clock.advance(hours=30)

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]


# --- a worker that dies --------------------------------------------------------------------------


def _worker_dies(_: AIRequest) -> None:
    raise RuntimeError("worker killed during the OpenAI call")


def test_turn_left_awaiting_ai_is_answered_exactly_once_on_the_next_run(app: App) -> None:
    app.ai.during_next_call(_worker_dies)
    app.receive("Hi")
    with pytest.raises(RuntimeError):
        app.drain()
    assert app.turns()[0].status is TurnStatus.AWAITING_AI
    assert app.sender.sent == []

    app.run(SCOPE)

    assert [r.resumed for r in app.ai.requests] == [False, True]
    assert [r.openai_conversation_id for r in app.ai.requests] == ["conv_1", "conv_1"]
    assert len(app.ai.started) == 1
    assert app.sent_texts() == ["reply to: Hi"]
    assert len(app.charges()) == 1
    assert (app.credits().balance, app.credits().reserved) == (9, 0)
    assert app.run(SCOPE) == 0
    assert len(app.sender.sent) == 1


def test_a_turn_left_open_that_another_worker_resumes_first_is_left_to_it(app: App) -> None:
    app.ai.during_next_call(_worker_dies)
    app.receive("Hi")
    with pytest.raises(RuntimeError):
        app.drain()
    save_turn = app.turn_store.save_turn

    def another_worker_resumed_it_first(turn: Turn, before: TurnStatus) -> bool:
        save_turn(turn, before)  # the other worker's save
        return False

    app.turn_store.save_turn = another_worker_resumed_it_first  # type: ignore[method-assign]

    app.run(SCOPE)

    assert len(app.ai.requests) == 1  # only the call the dead worker made
    assert app.turns()[0].status is TurnStatus.AWAITING_AI


def test_part_left_sending_is_failed_as_unknown_and_never_sent_again(app: App) -> None:
    app.sender.crashes.append(RuntimeError("worker killed during the send"))
    app.receive("Hi")
    with pytest.raises(RuntimeError):
        app.drain()
    assert app.outbound_messages()[0].status is MessageStatus.SENDING

    app.run(SCOPE)

    assert app.sender.sent == []
    [outbound] = app.outbound_messages()
    assert (outbound.status, outbound.failure_reason) == (MessageStatus.FAILED, "delivery_outcome_unknown")
    assert app.turns()[0].status is TurnStatus.DONE
    assert app.credits().balance == 9


def test_running_the_job_twice_never_sends_twice(app: App) -> None:
    app.receive("Hi")
    app.queue.enqueue_scope(SCOPE)
    app.queue.enqueue_scope(SCOPE)

    app.drain()
    app.run(SCOPE)

    assert app.sent_texts() == ["reply to: Hi"]
    assert len(app.ai.requests) == 1
    assert len(app.charges()) == 1


def test_job_triggered_during_a_send_does_not_send_again(app: App) -> None:
    during: list[int] = []
    app.sender.during_send.append(lambda: during.append(app.run(SCOPE)))
    app.receive("Hi")

    app.drain()

    assert during == [0]
    assert app.sent_texts() == ["reply to: Hi"]


def test_worker_whose_lock_expired_mid_send_is_not_followed_by_a_second_send(app: App) -> None:
    def lock_expires_and_another_worker_runs() -> None:
        app.locks.expire(SCOPE)
        app.run(SCOPE)

    app.sender.during_send.append(lock_expires_and_another_worker_runs)
    app.receive("Hi")

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]
    assert len(app.ai.requests) == 1
    assert app.turns()[0].status is TurnStatus.DONE


# --- waiting for the customer to finish typing ---------------------------------------------------


def test_coalesce_window_waits_for_the_customer_to_finish_then_answers_once(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(coalesce_window=timedelta(seconds=5)))
    app.receive("Hi")
    app.clock.during_next_sleep.append(lambda: app.receive("I need a quote"))  # written while the worker waits

    app.drain()

    assert app.clock.slept == [5.0, 5.0]
    assert app.ai.inputs == [("Hi", "I need a quote")]
    assert app.sent_texts() == ["reply to: Hi | I need a quote"]
    assert len(app.charges()) == 1


def test_coalesce_window_already_passed_answers_without_waiting(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(coalesce_window=timedelta(seconds=5)))
    app.receive("Hi")
    app.clock.advance(seconds=6)

    app.drain()

    assert app.clock.slept == []
    assert app.sent_texts() == ["reply to: Hi"]


def test_no_coalesce_window_means_no_wait(app: App) -> None:
    app.receive("Hi")

    app.drain()

    assert app.clock.slept == []


def test_worker_never_opens_a_storage_call_inside_another_when_the_route_cache_is_empty(app: App) -> None:
    app.receive("Hi")
    app.route_cache.entries.clear()  # Redis restarted empty: the route is read from storage mid-turn

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]
    assert app.storage_calls.most == 1


def test_reply_that_comes_after_the_window_closed_is_not_sent(app: App) -> None:
    app.receive("Hi")
    app.clock.advance(hours=23, minutes=59)
    app.ai.during_next_call(lambda _: app.clock.advance(minutes=2))  # a slow answer

    app.drain()

    assert app.sender.sent == []
    [outbound] = app.outbound_messages()
    assert (outbound.status, outbound.failure_reason) == (MessageStatus.FAILED, "outside_service_window")
    assert app.inbound_messages()[0].status is MessageStatus.ANSWERED


# --- an upstream that is down --------------------------------------------------------------------


def test_while_the_ai_is_waited_out_no_turn_starts_and_nothing_is_held_or_asked(app: App) -> None:
    app.ai.available = False
    app.receive("Hi")

    app.drain()

    assert app.ai.requests == [] and app.turns() == []
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.RECEIVED]
    assert (app.credits().balance, app.credits().reserved) == (10, 0)


def test_messages_that_waited_for_the_ai_are_answered_in_order_once_it_is_back(app: App) -> None:
    app.ai.available = False
    for text in ("first", "second"):
        app.receive(text)
    app.drain()
    app.ai.available = True

    app.run(SCOPE)  # the recovery sweep's job

    assert app.ai.inputs == [("first", "second")]
    assert app.sent_texts() == ["reply to: first | second"]
    assert len(app.charges()) == 1


def test_a_turn_whose_ai_call_met_an_outage_waits_with_its_hold_instead_of_failing(app: App) -> None:
    app.ai.fail_next(reason="HTTP 503 after 4 attempts", retryable=True)
    app.receive("first")
    app.drain()
    app.receive("second")  # written during the outage: waits behind the first turn

    [turn] = app.turns()
    assert turn.status is TurnStatus.AWAITING_AI
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.PROCESSING, MessageStatus.RECEIVED]
    assert (app.credits().balance, app.credits().reserved) == (10, 1)

    app.run(SCOPE)  # OpenAI is back; the sweep brings the turn back

    assert app.ai.inputs == [("first",), ("first",), ("second",)]
    assert [r.resumed for r in app.ai.requests] == [False, True, False]
    assert app.sent_texts() == ["reply to: first", "reply to: second"]
    assert (app.credits().balance, app.credits().reserved) == (8, 0)


def test_a_turn_that_waited_out_the_patience_for_the_ai_fails_and_gives_its_hold_back(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(patience=timedelta(minutes=30)))
    app.ai.fail_next(reason="HTTP 503 after 4 attempts", retryable=True)
    app.receive("Hi")
    app.drain()
    app.clock.advance(minutes=30)
    app.ai.available = False

    app.run(SCOPE)

    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (
        MessageStatus.FAILED,
        "ai_unavailable: the OpenAI circuit is open",
    )
    assert (app.credits().balance, app.credits().reserved) == (10, 0)


def test_messages_that_waited_out_the_patience_without_a_turn_fail_as_ai_unavailable(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(patience=timedelta(minutes=30)))
    app.ai.available = False
    app.receive("Hi")
    app.drain()
    app.clock.advance(minutes=31)

    app.run(SCOPE)

    [inbound] = app.inbound_messages()
    assert (inbound.status, inbound.failure_reason) == (MessageStatus.FAILED, "ai_unavailable")


def test_a_reply_waits_while_the_channel_is_waited_out_and_goes_out_once_it_is_back(app: App) -> None:
    app.sender.available = False
    app.receive("Hi")

    app.drain()

    [outbound] = app.outbound_messages()
    assert (outbound.status, app.turns()[0].status) == (MessageStatus.PENDING, TurnStatus.REPLYING)
    assert app.sender.sent == [] and app.sender.read == []  # not even the read receipt is tried

    app.sender.available = True
    app.run(SCOPE)

    assert app.sent_texts() == ["reply to: Hi"]
    assert app.turns()[0].status is TurnStatus.DONE
    assert len(app.ai.requests) == 1 and len(app.charges()) == 1


def test_a_send_the_channel_refused_before_taking_it_is_sent_again_later(app: App) -> None:
    app.sender.failures.append(DeliveryFailed("(#130429) Rate limit hit", code="130429", retry_safe=True))
    app.receive("Hi")

    app.drain()

    assert app.outbound_messages()[0].status is MessageStatus.PENDING
    app.run(SCOPE)  # the sweep's next pass

    assert app.sent_texts() == ["reply to: Hi"]
    assert app.outbound_messages()[0].status is MessageStatus.SENT


def test_a_reply_that_waited_out_the_patience_for_the_channel_fails_as_unavailable(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(patience=timedelta(minutes=30)))
    app.sender.available = False
    app.receive("Hi")
    app.drain()
    app.clock.advance(minutes=30)

    app.run(SCOPE)

    [outbound] = app.outbound_messages()
    assert (outbound.status, outbound.failure_reason) == (MessageStatus.FAILED, "channel_unavailable")
    assert app.turns()[0].status is TurnStatus.DONE
