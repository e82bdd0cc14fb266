"""Instagram deliveries (`object: instagram`) on the signed webhook: texts are answered, every other
documented shape is recorded and skipped (or logged), echoes of the business's own app pause the bot."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve
from dependency_injector import providers
from flask.testing import FlaskClient

from adapters.memory.services import RecordingSender
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.process_pending_messages import ProcessScope
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import ChannelType
from domain.messages import MessageStatus
from domain.tenancy import Channel
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.http.meta.envelope import parse_delivery
from entrypoints.settings import Settings
from tests.unit.test_webhook_http import _post

FIXTURES = Path(__file__).parent / "fixtures" / "instagram"
ACCOUNT = "17841400000000001"


@pytest.fixture
def container() -> Container:
    container = build_container(Settings.from_env({}, dev=True))
    user = container.create_user()(CreateUserCommand(email="shop@example.com")).user
    container.add_channel()(
        AddChannelCommand(user.user_id, ChannelType.INSTAGRAM, "@shop", "IGtoken", phone_number_id=ACCOUNT)
    )
    container.create_agent()(CreateAgentCommand(user.user_id, "Agent", "pmpt_a", ACCOUNT))
    return container


@pytest.fixture
def client(container: Container) -> Iterator[FlaskClient]:
    yield create_app(container).test_client()


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _messages(container: Container) -> list[Any]:
    return sorted(container.memory_store().tables.messages.values(), key=lambda m: (m.sequence_no, m.message_id))


@pytest.mark.parametrize("fixture", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_every_documented_instagram_shape_is_answered_200(client: FlaskClient, fixture: str) -> None:
    assert _post(client, _fixture(fixture)).status_code == 200


def test_two_texts_are_stored_for_the_account_and_the_igsid_with_millisecond_times(
    client: FlaskClient, container: Container
) -> None:
    answer = _post(client, _fixture("text.json"))

    assert answer.status_code == 200
    first, second = _messages(container)
    assert (first.phone_number_id, first.status, first.text) == (ACCOUNT, "received", "Hi, do you ship to Spain? 🇪🇸")
    assert second.text == "и сколько это стоит?"
    assert first.sent_at == datetime(2025, 12, 3, 8, 0, tzinfo=UTC)
    assert second.sent_at == datetime(2025, 12, 3, 8, 0, 1, 500_000, tzinfo=UTC)
    [conversation] = container.memory_store().tables.conversations.values()
    assert conversation.customer_id == "IGSID000111"


def test_a_redelivery_is_stored_once(client: FlaskClient, container: Container) -> None:
    _post(client, _fixture("text.json"))
    _post(client, _fixture("text.json"))

    assert len(_messages(container)) == 2


def test_attachments_story_replies_mentions_deletions_and_standby_are_recorded_and_skipped(
    client: FlaskClient, container: Container
) -> None:
    assert _post(client, _fixture("shapes.json")).status_code == 200

    skipped = {m.platform_message_id: (m.status, m.failure_reason) for m in _messages(container)}
    assert skipped == {
        "mid.image": ("skipped", "unsupported_type:image"),
        "mid.story_reply": ("skipped", "story_reply"),
        "mid.mention": ("skipped", "unsupported_type:story_mention"),
        "mid.unsupported": ("skipped", "unsupported_media"),
        "mid.deleted": ("skipped", "deleted_by_customer"),
        "mid.standby": ("skipped", "standby"),
    }


def test_reactions_reads_edits_and_referrals_are_logged_as_ignored() -> None:
    delivery = parse_delivery(json.loads(_fixture("shapes.json")))

    assert [item.reason for item in delivery.ignored] == [
        "reaction",
        "reaction",
        "read",
        "message_edit",
        "referral",
    ]


def test_a_postback_is_answered_with_its_title(client: FlaskClient, container: Container) -> None:
    _post(client, _fixture("postback.json"))

    [message] = _messages(container)
    assert (message.status, message.text, message.content_type) == (
        "received",
        "What are your opening hours?",
        "postback",
    )


def test_an_echo_from_the_instagram_app_is_a_human_message_and_pauses_the_conversation(
    client: FlaskClient, container: Container
) -> None:
    _post(client, _fixture("text.json"))

    answer = _post(client, _fixture("business_echo.json"))

    assert answer.json["echoes"] == 1
    echo = _messages(container)[-1]
    assert (echo.sender, echo.direction, echo.status, echo.sequence_no) == ("human", "outbound", "sent", 3)
    assert echo.text == "Maria here: yes, we ship to Spain."
    [conversation] = container.memory_store().tables.conversations.values()
    assert (conversation.customer_id, conversation.bot) == ("IGSID000111", "paused")


def test_an_echo_of_our_own_send_is_recognised_by_its_mid_and_ignored(
    client: FlaskClient, container: Container
) -> None:
    _post(client, _fixture("text.json"))
    _post(client, _fixture("business_echo.json"))  # stored under its mid, as our own sends are
    [conversation] = container.memory_store().tables.conversations.values()
    before = (len(_messages(container)), conversation.last_sequence_no)

    answer = _post(client, _fixture("business_echo.json"))

    assert answer.status_code == 200
    [conversation] = container.memory_store().tables.conversations.values()
    assert (len(_messages(container)), conversation.last_sequence_no) == before


def _event(message: dict[str, Any], *, sender: str, recipient: str) -> bytes:
    """One Instagram message event, timed now: a reply is only sent inside the customer's window."""
    at = int(datetime.now(UTC).timestamp() * 1000)
    event = {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": at, "message": message}
    return json.dumps({"object": "instagram", "entry": [{"id": ACCOUNT, "time": at, "messaging": [event]}]}).encode()


class _EchoingChannel(RecordingSender):
    """Instagram as it may behave: the echo of a send reaches the webhook before the send is answered,
    so before the worker has stored the part's platform id."""

    def __init__(self) -> None:
        super().__init__()
        self.client: FlaskClient | None = None
        self.echo_answers: list[Any] = []

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        mid = super().send_text(channel, recipient_id, text, human_agent=human_agent)
        assert self.client is not None
        echo = _event(
            {"mid": mid, "text": text, "is_echo": True}, sender=channel.phone_number_id, recipient=recipient_id
        )
        self.echo_answers.append(_post(self.client, echo))
        return mid


def test_the_echo_of_our_reply_racing_the_worker_does_not_pause_the_conversation(
    client: FlaskClient, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="application.use_cases.record_business_echo")
    channel = _EchoingChannel()
    channel.client = client
    container.recording_sender.override(providers.Object(channel))
    container.top_up_credits()(TopUpCommand(next(iter(container.memory_store().tables.users)), 10))
    queue, process = container.queue(), container.process_pending_messages()

    def customer_writes(mid: str, text: str) -> None:
        answer = _post(client, _event({"mid": mid, "text": text}, sender="IGSID000111", recipient=ACCOUNT))
        assert answer.status_code == 200
        while queue.jobs:
            process(ProcessScope(queue.jobs.popleft()))

    customer_writes("mid.question", "Do you ship to Spain?")

    [echoed] = channel.echo_answers
    assert (echoed.status_code, echoed.json["echoes"]) == (200, 1)
    [ignored] = [r for r in caplog.records if r.getMessage() == "echo_ignored"]
    assert getattr(ignored, "reason", None) == "own_send_in_flight"
    question, reply = _messages(container)
    assert (question.text, reply.sender, reply.status) == ("Do you ship to Spain?", "ai", "sent")
    assert reply.platform_message_id == channel.sent[0].platform_message_id  # stored once the send was answered
    [conversation] = container.memory_store().tables.conversations.values()
    assert (conversation.bot, conversation.last_sequence_no) == ("active", 2)

    customer_writes("mid.again", "And to Portugal?")

    _, answer = channel.sent
    assert (answer.recipient_id, answer.text.endswith("You said: And to Portugal?")) == ("IGSID000111", True)
    assert len(channel.echo_answers) == 2
    [conversation] = container.memory_store().tables.conversations.values()
    assert conversation.bot == "active"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.update(timestamp="1764748800000"), "malformed"),
        (lambda e: e.update(timestamp=True), "malformed"),
        (lambda e: e.pop("sender"), "malformed"),
        (lambda e: e.pop("message") and e.update(typing={"on": True}), "unknown_event"),
    ],
)
def test_unreadable_events_are_ignored_with_a_reason(change: Any, expected: str) -> None:
    payload = json.loads(_fixture("text.json"))
    change(payload["entry"][0]["messaging"][0])

    delivery = parse_delivery(payload)

    assert [item.reason for item in delivery.ignored] == [expected]
    assert len(delivery.inbound) == 1


def test_an_unreadable_message_is_kept_aside_with_its_mid() -> None:
    payload = json.loads(_fixture("text.json"))
    payload["entry"][0]["messaging"][0]["message"]["text"] = {"not": "text"}

    delivery = parse_delivery(payload)

    [rejected] = delivery.rejected
    assert (rejected.phone_number_id, rejected.platform_message_id) == (
        ACCOUNT,
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
    )


def _deletion_of(mid: str) -> bytes:
    event = {
        "sender": {"id": "IGSID000111"},
        "recipient": {"id": ACCOUNT},
        "timestamp": 1764748900000,
        "message": {"mid": mid, "is_deleted": True},
    }
    return json.dumps(
        {"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1764748900000, "messaging": [event]}]}
    ).encode()


def test_an_unsent_message_still_waiting_is_skipped_and_never_answered(
    client: FlaskClient, container: Container
) -> None:
    _post(client, _fixture("text.json"))

    assert _post(client, _deletion_of("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx")).status_code == 200

    first, second = _messages(container)
    assert (first.status, first.failure_reason, first.text) == (
        "skipped",
        "deleted_by_customer",
        "Hi, do you ship to Spain? 🇪🇸",
    )
    assert second.status == "received"


def test_an_unsent_message_already_answered_is_kept_as_answered(client: FlaskClient, container: Container) -> None:
    _post(client, _fixture("postback.json"))
    [message] = _messages(container)
    container.memory_store().tables.messages[message.message_id] = evolve(message, status=MessageStatus.ANSWERED)

    _post(client, _deletion_of("mid.postback"))

    [kept] = _messages(container)
    assert (kept.status, kept.failure_reason) == ("answered", None)


def test_a_message_deleted_before_it_was_seen_is_stored_skipped(client: FlaskClient, container: Container) -> None:
    _post(client, _deletion_of("mid.never_seen"))

    [message] = _messages(container)
    assert (message.platform_message_id, message.status, message.failure_reason) == (
        "mid.never_seen",
        "skipped",
        "deleted_by_customer",
    )
