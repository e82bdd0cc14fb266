"""The webhook's use case: a customer's message is stored durably, once, and a worker is asked to answer it."""

from __future__ import annotations

from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.handle_inbound_message import HandleInbound, InboundOutcome
from domain.channels import ChannelType
from domain.messages import MessageStatus, OrderingScope
from tests.unit.conftest import CUSTOMER, PHONE_NUMBER_ID, App, MakeApp
from tests.unit.fakes import DownQueue


def _add_whatsapp_channel(app: App, phone_number_id: str) -> None:
    app.add_channel(
        AddChannelCommand(
            user_id=app.user.user_id,
            type=ChannelType.WHATSAPP,
            external_number="+1 555 0199",
            access_token="EAAG-second-number-token",
            phone_number_id=phone_number_id,
        )
    )


def test_message_is_stored_and_queued_once(app: App) -> None:
    outcome = app.receive("Hi, do you ship to Canada?", wamid="wamid.A")

    assert outcome is InboundOutcome.QUEUED
    [stored] = app.inbound_messages()
    assert (stored.platform_message_id, stored.text, stored.status) == (
        "wamid.A",
        "Hi, do you ship to Canada?",
        MessageStatus.RECEIVED,
    )
    assert stored.user_id == app.user.user_id
    assert app.queue.enqueued == [f"conversation:{stored.conversation_id}"]


def test_message_opens_a_conversation_for_the_customer_on_the_agent(app: App) -> None:
    app.receive("Hi")

    [conversation] = app.conversations()
    assert (conversation.customer_id, conversation.agent_id, conversation.phone_number_id) == (
        CUSTOMER,
        app.agent.agent_id,
        PHONE_NUMBER_ID,
    )
    assert conversation.customer_name == f"Customer {CUSTOMER}"
    assert conversation.last_customer_message_at == app.clock.now()


def test_messages_of_one_customer_share_a_conversation_in_increasing_sequence(app: App) -> None:
    app.receive("one")
    app.receive("two")
    app.receive("hello", customer="15550002")

    first, second, other = app.inbound_messages()
    assert first.conversation_id == second.conversation_id != other.conversation_id
    assert (first.sequence_no, second.sequence_no) == (1, 2)


def test_second_delivery_of_same_message_is_a_duplicate_and_stored_once(app: App) -> None:
    first = app.receive("Hi", wamid="wamid.same")
    second = app.receive("Hi", wamid="wamid.same")

    assert (first, second) == (InboundOutcome.QUEUED, InboundOutcome.DUPLICATE)
    assert len(app.inbound_messages()) == 1
    app.drain()
    assert len(app.ai.requests) == 1
    assert app.sent_texts() == ["reply to: Hi"]


def test_redelivery_does_not_use_up_a_sequence_number(app: App) -> None:
    app.receive("one", wamid="wamid.1")
    app.receive("one", wamid="wamid.1")
    app.receive("two", wamid="wamid.2")

    assert [m.sequence_no for m in app.inbound_messages()] == [1, 2]


def test_same_message_id_on_another_channel_is_not_a_duplicate(app: App) -> None:
    _add_whatsapp_channel(app, "pn_200")
    app.create_agent(
        CreateAgentCommand(user_id=app.user.user_id, name="Second", prompt_id="pmpt_2", phone_number_id="pn_200")
    )

    assert app.receive("Hi", wamid="wamid.X") is InboundOutcome.QUEUED
    assert app.receive("Hi", wamid="wamid.X", phone_number_id="pn_200") is InboundOutcome.QUEUED
    assert len(app.inbound_messages()) == 2


def test_message_to_an_unknown_channel_is_ignored(app: App) -> None:
    outcome = app.receive("Hi", phone_number_id="pn_unknown")

    assert outcome is InboundOutcome.UNKNOWN_CHANNEL
    assert app.messages() == []
    assert app.conversations() == []
    assert app.queue.enqueued == []


def test_message_to_a_channel_without_agent_is_ignored(app: App) -> None:
    _add_whatsapp_channel(app, "pn_no_agent")

    outcome = app.receive("Hi", phone_number_id="pn_no_agent")

    assert outcome is InboundOutcome.NO_AGENT
    assert app.messages() == []
    assert app.queue.enqueued == []


def test_unsupported_type_is_stored_as_skipped_with_its_reason_and_not_queued(app: App) -> None:
    outcome = app.receive(None, content_type="image", skip_reason="image messages are not answered")

    assert outcome is InboundOutcome.SKIPPED
    [stored] = app.inbound_messages()
    assert (stored.status, stored.content_type, stored.failure_reason) == (
        MessageStatus.SKIPPED,
        "image",
        "image messages are not answered",
    )
    assert app.queue.enqueued == []
    assert app.drain() == 0
    assert app.ai.requests == []


def test_redelivered_skipped_message_is_a_duplicate(app: App) -> None:
    app.receive(None, wamid="wamid.img", content_type="image", skip_reason="image")

    assert app.receive(None, wamid="wamid.img", content_type="image", skip_reason="image") is InboundOutcome.DUPLICATE
    assert len(app.inbound_messages()) == 1


def test_message_is_kept_when_the_queue_is_down_and_answered_after_recovery(app: App) -> None:
    down = DownQueue()
    app.handle = app.handle_with_queue(down)

    outcome = app.receive("Are you open on Sunday?")

    assert outcome is InboundOutcome.STORED
    assert down.attempts == ["conversation:1"]
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.RECEIVED]

    app.clock.advance(minutes=6)
    assert app.recover() == 1
    app.drain()
    assert app.sent_texts() == ["reply to: Are you open on Sunday?"]
    assert [m.status for m in app.inbound_messages()] == [MessageStatus.ANSWERED]


def test_phone_number_ordering_queues_the_channel_scope(make_app: MakeApp) -> None:
    app = make_app(ordering=OrderingScope.PHONE_NUMBER)

    app.receive("Hi")

    assert app.queue.enqueued == [f"channel:{PHONE_NUMBER_ID}"]


def test_route_comes_from_the_cache_after_the_first_message(app: App) -> None:
    app.receive("one")
    assert PHONE_NUMBER_ID in app.route_cache.entries
    opened = app.uow_opened

    app.receive("two")

    assert app.uow_opened == opened  # the route lookup did not touch storage
    assert [m.text for m in app.inbound_messages()] == ["one", "two"]


def test_adding_an_agent_invalidates_the_cached_route(app: App) -> None:
    _add_whatsapp_channel(app, "pn_200")
    assert app.receive("Hi", phone_number_id="pn_200") is InboundOutcome.NO_AGENT
    assert "pn_200" in app.route_cache.entries  # cached: a channel without agent

    app.create_agent(
        CreateAgentCommand(user_id=app.user.user_id, name="New", prompt_id="pmpt_2", phone_number_id="pn_200")
    )

    assert app.receive("Hi again", phone_number_id="pn_200") is InboundOutcome.QUEUED


def test_adding_a_channel_invalidates_its_cached_route(app: App) -> None:
    _add_whatsapp_channel(app, "pn_300")

    assert "pn_300" in app.route_cache.invalidated
    assert "pn_300" not in app.route_cache.entries


def test_a_job_already_waiting_for_the_conversation_is_not_queued_again(app: App) -> None:
    app.receive("one")
    app.receive("two")
    assert app.queue.enqueued == ["conversation:1"]

    app.queue.take(timeout_s=0)  # a worker starts the job
    app.receive("three")
    assert app.queue.enqueued == ["conversation:1", "conversation:1"]


def test_a_message_the_store_refuses_is_kept_aside_with_its_delivery_and_nothing_of_it_is_stored(app: App) -> None:
    refused = app.inbound("a NUL \x00 the database refuses", wamid="wamid.bad")

    outcome = app.handle(HandleInbound(refused, correlation_id="corr-1", delivery=b'{"delivery": "\\u0000"}'))

    assert outcome is InboundOutcome.REJECTED
    [kept] = app.rejected.recorded
    assert kept.reason.startswith("not_storable: ")
    assert (kept.phone_number_id, kept.platform_message_id, kept.correlation_id) == (
        PHONE_NUMBER_ID,
        "wamid.bad",
        "corr-1",
    )
    assert kept.body == b'{"delivery": "\\u0000"}'
    assert (app.inbound_messages(), app.conversations(), app.queue.enqueued) == ([], [], [])


def test_after_a_refused_message_the_next_one_is_stored_and_answered(app: App) -> None:
    app.handle(HandleInbound(app.inbound("bad \ud800 half a character", wamid="wamid.bad")))

    assert app.receive("Hello?", wamid="wamid.good") is InboundOutcome.QUEUED
    app.drain()

    assert [(m.platform_message_id, m.status) for m in app.inbound_messages()] == [
        ("wamid.good", MessageStatus.ANSWERED)
    ]
    assert app.sent_texts() == ["reply to: Hello?"]
