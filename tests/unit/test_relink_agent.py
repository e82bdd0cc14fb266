"""RelinkAgent, DeleteAgent and DeleteChannel on the in-memory adapters: conversations archived, the turn
in flight and the pending messages handed to the agent taking the channel, answered once, charged once."""

from __future__ import annotations

from collections import deque
from datetime import datetime

import pytest

from application.ports.repositories import StorageUnavailable
from application.ports.services import AIRequest
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.apply_delivery_report import ApplyDeliveryReport
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.delete_agent import DeleteAgentCommand
from application.use_cases.delete_channel import DeleteChannelCommand
from application.use_cases.handle_inbound_message import HandleInbound, HandleInboundMessage, InboundOutcome
from application.use_cases.reject_delivery import RejectDelivery
from application.use_cases.relink_agent import RelinkAgentCommand
from domain.channels import ChannelType
from domain.errors import Conflict, NotFound
from domain.messages import DeliveryReport, InboundMessage, Message, MessageStatus, RecordedInbound
from domain.relink import AGENT_UNLINKED, RELINKED
from domain.tenancy import Agent, Route
from domain.turns import TurnStatus
from tests.unit.conftest import ACCESS_TOKEN, PHONE_NUMBER_ID, PROMPT_ID, App


def second_agent(app: App, phone_number_id: str | None = None) -> Agent:
    return app.create_agent(
        CreateAgentCommand(
            user_id=app.user.user_id, name="Support", prompt_id="pmpt_support", phone_number_id=phone_number_id
        )
    )


def relink_to_channel(app: App, agent: Agent) -> Agent:
    return app.relink_agent(
        RelinkAgentCommand(user_id=app.user.user_id, agent_id=agent.agent_id, phone_number_id=PHONE_NUMBER_ID)
    )


def test_an_agent_can_be_created_without_a_channel_and_linked_later(app: App) -> None:
    support = second_agent(app)
    assert support.phone_number_id is None

    moved = relink_to_channel(app, support)

    assert moved.phone_number_id == PHONE_NUMBER_ID
    assert app.queries.agent(app.user.user_id, app.agent.agent_id).phone_number_id is None
    route = app.routes.find(PHONE_NUMBER_ID)
    assert route is not None and route.agent == moved


def test_relink_during_the_ai_call_gives_the_messages_to_the_new_agent_answered_once(app: App) -> None:
    support = second_agent(app)
    app.ai.during_next_call(lambda _: relink_to_channel(app, support))
    app.receive("Where is my order?", wamid="wamid.q")

    app.drain()

    first, second = app.ai.requests
    assert first.prompt_id == PROMPT_ID  # the old agent's call, answered too late: thrown away
    assert second.prompt_id == "pmpt_support"
    assert second.inputs == ("Where is my order?",)
    assert second.openai_conversation_id != first.openai_conversation_id
    assert app.sent_texts() == ["reply to: Where is my order?"]
    old, new = app.conversations()
    assert (old.agent_id, old.is_active) == (app.agent.agent_id, False)
    assert (new.agent_id, new.is_active) == (support.agent_id, True)
    [question] = app.inbound_messages()
    assert (question.conversation_id, question.sequence_no, question.status) == (
        new.conversation_id,
        1,
        MessageStatus.ANSWERED,
    )
    failed, answered = app.turns()
    assert (failed.status, failed.failure_reason) == (TurnStatus.FAILED, RELINKED)
    assert answered.status is TurnStatus.DONE
    assert len(app.charges()) == 1
    assert (app.credits().balance, app.credits().reserved) == (9, 0)
    assert [a.new_agent_id for a in app.store.tables.archives.values()] == [support.agent_id]


def test_after_a_relink_the_next_message_starts_a_new_conversation(app: App) -> None:
    app.receive("Hi")
    app.drain()
    support = second_agent(app)
    relink_to_channel(app, support)

    app.receive("Still there?")
    app.drain()

    old, new = app.conversations()
    assert not old.is_active and new.is_active and new.agent_id == support.agent_id
    assert new.openai_conversation_id is not None and new.openai_conversation_id != old.openai_conversation_id
    assert [r.prompt_id for r in app.ai.requests] == [PROMPT_ID, "pmpt_support"]


def test_a_prompt_change_archives_nothing_and_takes_effect_on_the_next_turn(app: App) -> None:
    app.receive("Hi")
    app.drain()

    app.relink_agent(
        RelinkAgentCommand(
            user_id=app.user.user_id, agent_id=app.agent.agent_id, prompt_id="pmpt_v2", prompt_version=None
        )
    )
    app.receive("Again")
    app.drain()

    [conversation] = app.conversations()
    assert conversation.is_active
    assert [(r.prompt_id, r.prompt_version) for r in app.ai.requests] == [(PROMPT_ID, "3"), ("pmpt_v2", None)]


def test_unlinking_skips_what_was_not_answered_and_charges_nothing(app: App) -> None:
    app.ai.during_next_call(
        lambda _: app.relink_agent(
            RelinkAgentCommand(user_id=app.user.user_id, agent_id=app.agent.agent_id, phone_number_id=None)
        )
    )
    app.receive("Hello?")

    app.drain()

    [message] = app.inbound_messages()
    assert (message.status, message.failure_reason) == (MessageStatus.SKIPPED, AGENT_UNLINKED)
    assert app.sent_texts() == []
    assert app.charges() == []
    assert (app.credits().balance, app.credits().reserved) == (10, 0)
    assert app.receive("Anyone?") is InboundOutcome.NO_AGENT


def test_a_stale_route_never_puts_a_message_in_the_old_agents_conversation(app: App) -> None:
    app.receive("Hi")
    app.drain()
    stale = app.routes.find(PHONE_NUMBER_ID)
    assert stale is not None
    support = second_agent(app)
    relink_to_channel(app, support)
    app.route_cache.put(stale)  # another process cached the route before the relink

    assert app.receive("After the relink") is InboundOutcome.QUEUED

    latest = app.inbound_messages()[-1]
    conversation = app.store.tables.conversations[latest.conversation_id]
    assert (conversation.agent_id, conversation.is_active) == (support.agent_id, True)
    route = app.route_cache.get(PHONE_NUMBER_ID)
    assert isinstance(route, Route) and route.agent is not None and route.agent.agent_id == support.agent_id


def test_linking_to_another_tenants_or_a_deleted_channel_is_not_found(app: App) -> None:
    with pytest.raises(NotFound) as unknown:
        app.relink_agent(
            RelinkAgentCommand(user_id=app.user.user_id, agent_id=app.agent.agent_id, phone_number_id="pn_elsewhere")
        )
    assert unknown.value.field == "phone_number_id"


def test_a_deleted_agent_is_gone_from_the_api_and_its_history_is_kept(app: App) -> None:
    app.receive("Hi")
    app.drain()

    app.delete_agent(DeleteAgentCommand(user_id=app.user.user_id, agent_id=app.agent.agent_id))

    with pytest.raises(NotFound):
        app.queries.agent(app.user.user_id, app.agent.agent_id)
    assert app.queries.agents(app.user.user_id) == []
    with pytest.raises(NotFound):
        app.delete_agent(DeleteAgentCommand(user_id=app.user.user_id, agent_id=app.agent.agent_id))
    [conversation] = app.conversations()
    assert not conversation.is_active
    assert len(app.messages()) == 2
    assert app.receive("Hello?") is InboundOutcome.NO_AGENT


def test_a_deleted_channel_ignores_its_webhooks_and_reports(app: App) -> None:
    app.receive("Hi")
    app.drain()
    [reply] = app.outbound_messages()

    app.delete_channel(DeleteChannelCommand(user_id=app.user.user_id, phone_number_id=PHONE_NUMBER_ID))

    assert app.receive("Hello?") is InboundOutcome.CHANNEL_DELETED
    report = DeliveryReport(PHONE_NUMBER_ID, reply.platform_message_id or "", MessageStatus.READ, app.clock.now())
    assert ApplyDeliveryReport(app.message_store, app.clock)(report) is False
    assert app.queries.channels(app.user.user_id) == []
    assert app.queries.agent(app.user.user_id, app.agent.agent_id).phone_number_id is None
    assert not app.conversations()[0].is_active


def test_a_deleted_channel_comes_back_for_its_tenant_only(app: App) -> None:
    app.delete_channel(DeleteChannelCommand(user_id=app.user.user_id, phone_number_id=PHONE_NUMBER_ID))
    command = AddChannelCommand(
        user_id=app.user.user_id,
        type=ChannelType.WHATSAPP,
        external_number="+1 555 0199",
        access_token=ACCESS_TOKEN + "-new",
        phone_number_id=PHONE_NUMBER_ID,
    )

    revived = app.add_channel(command)

    assert (revived.deleted_at, revived.access_token) == (None, ACCESS_TOKEN + "-new")
    assert [c.phone_number_id for c in app.queries.channels(app.user.user_id)] == [PHONE_NUMBER_ID]


def test_a_channel_registered_by_another_tenant_stays_a_conflict(app: App) -> None:
    rival = app.create_user(CreateUserCommand(email="rival@elsewhere.example", company_name=None)).user
    app.delete_channel(DeleteChannelCommand(user_id=app.user.user_id, phone_number_id=PHONE_NUMBER_ID))

    with pytest.raises(Conflict):
        app.add_channel(
            AddChannelCommand(
                user_id=rival.user_id,
                type=ChannelType.WHATSAPP,
                external_number="+1 555 0199",
                access_token=ACCESS_TOKEN,
                phone_number_id=PHONE_NUMBER_ID,
            )
        )


def test_relinked_messages_scope_is_enqueued_after_commit(app: App) -> None:
    support = second_agent(app)
    seen: list[AIRequest] = []
    app.ai.during_next_call(lambda request: (seen.append(request), relink_to_channel(app, support)))
    app.receive("One")

    app.run(app.queue.jobs.popleft())

    new = app.conversations()[-1]
    assert f"conversation:{new.conversation_id}" in app.queue.enqueued


class _RelinkedEveryTime:
    """A message store that finds, on every attempt, that the route's agent has just left the channel."""

    def __init__(self, app: App) -> None:
        self.attempts = 0
        self._app = app

    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound | None:
        self.attempts += 1
        return None

    def outbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        return self._app.message_store.outbound(phone_number_id, platform_message_id)

    def save_report(self, before: Message, after: Message) -> bool:
        return self._app.message_store.save_report(before, after)


def test_a_message_that_loses_every_race_with_relinks_is_refused_for_meta_to_redeliver(app: App) -> None:
    store = _RelinkedEveryTime(app)
    handle = HandleInboundMessage(
        store, app.routes, app.queue, app.clock, RejectDelivery(app.rejected, app.clock), app.ordering
    )

    with pytest.raises(StorageUnavailable):  # answered 503 with Retry-After by the webhook
        handle(HandleInbound(app.inbound("Hi")))

    assert store.attempts == 5
    assert app.messages() == [] and app.queue.jobs == deque()
