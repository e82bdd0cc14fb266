"""WhatsAppCloudSender's read receipt with the typing indicator, through the real urllib3 client (requests'
transport) against the stand-in Graph API: still one call, whose body carries `typing_indicator`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.meta.whatsapp import WhatsAppCloudSender
from application.ports.services import DeliveryFailed
from domain.channels import ChannelType
from domain.tenancy import Channel
from tests.support.standin_graph import GraphFailure, ReadReceipt, StandInGraph

TOKEN = "EAAGstandinTYPINGtoken0123456789"


@pytest.fixture
def graph() -> Iterator[StandInGraph]:
    with StandInGraph() as server:
        yield server


@pytest.fixture
def sender(graph: StandInGraph) -> WhatsAppCloudSender:
    return WhatsAppCloudSender(graph.base_url, timeout_ms=2000)


@pytest.fixture
def channel() -> Channel:
    return Channel(
        phone_number_id="106540352242922",
        user_id="usr_1",
        type=ChannelType.WHATSAPP,
        external_number="+15550001111",
        access_token=TOKEN,
        display_name="Shop",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_the_read_receipt_with_typing_is_one_call_carrying_the_indicator(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    sender.mark_read(channel, "wamid.INBOUND1", typing=True)

    [request] = graph.requests
    assert (request.method, request.path) == ("POST", "/v24.0/106540352242922/messages")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.INBOUND1",
        "typing_indicator": {"type": "text"},
    }
    assert graph.reads == [ReadReceipt("106540352242922", "wamid.INBOUND1", None, "read", f"Bearer {TOKEN}", "text")]
    assert graph.sent == []


def test_without_typing_the_receipt_has_no_indicator(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    sender.mark_read(channel, "wamid.INBOUND1", typing=False)

    [request] = graph.requests
    assert "typing_indicator" not in request.body
    assert graph.reads[0].typing is None


def test_a_refused_receipt_with_typing_is_a_delivery_failed_with_metas_code(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    graph.fail_next(GraphFailure.token_expired())

    with pytest.raises(DeliveryFailed) as caught:
        sender.mark_read(channel, "wamid.INBOUND1", typing=True)

    assert caught.value.code == "190"
    assert TOKEN not in str(caught.value)
    assert graph.reads == []
