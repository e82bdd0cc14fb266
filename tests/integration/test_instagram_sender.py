"""InstagramSender driving the real urllib3 client (requests' transport) against the stand-in Graph API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.meta.instagram import InstagramSender
from application.ports.services import DeliveryFailed
from domain.channels import ChannelType, policy_for
from domain.tenancy import Channel
from tests.support.standin_graph import GraphFailure, StandInGraph

TOKEN = "IGQVJstandinSECRETtoken0123456789"
ACCOUNT = "17841400000000001"


@pytest.fixture
def graph() -> Iterator[StandInGraph]:
    with StandInGraph(version="v25.0") as server:
        yield server


@pytest.fixture
def sender(graph: StandInGraph) -> InstagramSender:
    return InstagramSender(graph.base_url, timeout_ms=2000)


@pytest.fixture
def channel() -> Channel:
    return Channel(
        phone_number_id=ACCOUNT,
        user_id="usr_1",
        type=ChannelType.INSTAGRAM,
        external_number="@shop",
        access_token=TOKEN,
        display_name="Shop",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_text_is_posted_to_the_account_for_the_igsid_with_the_channel_token(
    sender: InstagramSender, graph: StandInGraph, channel: Channel
) -> None:
    message_id = sender.send_text(channel, "IGSID000111", "Hola 👋")

    request = graph.requests[0]
    assert (request.method, request.path) == ("POST", f"/v25.0/{ACCOUNT}/messages")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {"recipient": {"id": "IGSID000111"}, "message": {"text": "Hola 👋"}}
    assert message_id == graph.sent[0].message_id


def test_a_long_reply_split_by_the_policy_goes_out_as_parts_within_1000_bytes(
    sender: InstagramSender, graph: StandInGraph, channel: Channel
) -> None:
    reply = " ".join(["Привет 😀 こんにちは"] * 120)

    for part in policy_for(ChannelType.INSTAGRAM).split(reply):
        sender.send_text(channel, "IGSID000111", part)

    texts = [sent.text for sent in graph.sent]
    assert len(texts) > 1
    assert all(len(text.encode("utf-8")) <= 1000 for text in texts)
    assert " ".join(texts) == reply


def test_mark_read_sends_nothing(sender: InstagramSender, graph: StandInGraph, channel: Channel) -> None:
    sender.mark_read(channel, "mid.1")

    assert graph.requests == []


def test_a_graph_error_is_stored_with_its_code_and_the_token_never_shown(
    sender: InstagramSender, graph: StandInGraph, channel: Channel
) -> None:
    graph.fail_next(GraphFailure(400, 10, "(#10) This message is sent outside of allowed window.", "window"))

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "IGSID000111", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == ("10", False)
    assert TOKEN not in repr(vars(failed.value))


def test_a_rate_limit_is_retry_safe(sender: InstagramSender, graph: StandInGraph, channel: Channel) -> None:
    graph.fail_next(GraphFailure(400, 4, "(#4) Application request limit reached", "limit"))

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "IGSID000111", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == ("4", True)


def test_a_human_agent_reply_carries_metas_tag(sender: InstagramSender, graph: StandInGraph, channel: Channel) -> None:
    sender.send_text(channel, "IGSID000111", "Maria here.", human_agent=True)

    assert graph.requests[0].body == {
        "recipient": {"id": "IGSID000111"},
        "message": {"text": "Maria here."},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
    }
