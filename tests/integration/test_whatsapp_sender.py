"""WhatsAppCloudSender driving the real urllib3 client (requests' transport) against the stand-in Graph API."""

from __future__ import annotations

import socket
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.circuit import Circuit
from adapters.meta.whatsapp import WhatsAppCloudSender, graph_outage
from application.ports.services import DeliveryFailed
from domain.channels import ChannelType
from domain.tenancy import Channel
from tests.support.standin_graph import GraphFailure, ReadReceipt, StandInGraph

TOKEN = "EAAGstandinSECRETtoken0123456789"


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


def assert_token_absent(error: DeliveryFailed) -> None:
    shown = "".join(traceback.format_exception(error)) + repr(vars(error))
    assert TOKEN not in shown


def test_text_is_posted_to_the_number_with_the_channel_token(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    message_id = sender.send_text(channel, "4915112345678", "Hello there")

    request = graph.requests[0]
    assert request.method == "POST"
    assert request.path == "/v24.0/106540352242922/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+4915112345678",
        "type": "text",
        "text": {"body": "Hello there", "preview_url": False},
    }
    assert message_id == graph.sent[0].message_id
    assert message_id.startswith("wamid.")


def test_recipient_already_written_with_a_plus_is_kept(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    sender.send_text(channel, "+4915112345678", "Hi")

    assert graph.sent[0].to == "+4915112345678"


def test_mark_read_posts_the_read_status(sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel) -> None:
    sender.mark_read(channel, "wamid.INBOUND1")

    assert graph.requests[0].body == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.INBOUND1"}
    assert graph.reads == [ReadReceipt("106540352242922", "wamid.INBOUND1", None, "read", f"Bearer {TOKEN}")]
    assert graph.sent == []


@pytest.mark.parametrize(
    ("failure", "code", "reason"),
    [
        (GraphFailure.reengagement(), "131047", "(#131047) Re-engagement message"),
        (GraphFailure.throughput(), "130429", "(#130429) Rate limit hit"),
        (GraphFailure.token_expired(), "190", "Error validating access token: Session has expired."),
    ],
    ids=["131047_reengagement", "130429_throughput", "190_token_expired_http_401"],
)
def test_meta_error_becomes_delivery_failed_with_its_code_and_details(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel, failure: GraphFailure, code: str, reason: str
) -> None:
    graph.fail_next(failure)

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "4915112345678", "Hi")

    assert (failed.value.code, failed.value.reason, failed.value.details) == (code, reason, failure.details)
    assert graph.sent == []
    assert_token_absent(failed.value)


def test_server_error_is_attempted_exactly_once(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    graph.fail_next(GraphFailure.server_error())

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "4915112345678", "Hi")

    assert failed.value.code == "131000"
    assert not failed.value.retry_safe  # Meta does not say it did not go out
    assert len(graph.requests) == 1


def test_timeout_fails_without_a_code_after_one_attempt(graph: StandInGraph, channel: Channel) -> None:
    graph.fail_next(GraphFailure.slow(delay_s=1.0))

    with pytest.raises(DeliveryFailed) as failed:
        WhatsAppCloudSender(graph.base_url, timeout_ms=200).send_text(channel, "4915112345678", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == (None, False)
    assert "did not answer within 0.2 s" in failed.value.reason
    assert len(graph.requests) == 1
    assert_token_absent(failed.value)


def test_dropped_connection_fails_without_a_code_after_one_attempt(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    graph.fail_next(GraphFailure.dropped())

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "4915112345678", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == (None, False)  # it may have gone out
    assert "could not reach the Graph API" in failed.value.reason
    assert len(graph.requests) == 1
    assert_token_absent(failed.value)


def test_connection_refused_fails_without_a_code(channel: Channel) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryFailed) as failed:
        WhatsAppCloudSender(f"http://127.0.0.1:{port}/v24.0", timeout_ms=1000).send_text(channel, "4915112345678", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == (None, True)  # it never reached Meta
    assert_token_absent(failed.value)


def test_mark_read_failure_is_a_delivery_failed(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel
) -> None:
    graph.fail_next(GraphFailure.token_expired())

    with pytest.raises(DeliveryFailed) as failed:
        sender.mark_read(channel, "wamid.INBOUND1")

    assert failed.value.code == "190"


@pytest.mark.parametrize(
    ("failure", "retry_safe"),
    [
        (GraphFailure.throughput(), True),
        (GraphFailure(429, 131056, "(#131056) pair rate limit hit", "Too many messages to this user."), True),
        (GraphFailure(503, 131016, "(#131016) Service unavailable", "Service temporarily unavailable"), True),
        (GraphFailure(429, 80007, "(#80007) Rate limit issues", "WABA rate limit"), True),
        (GraphFailure.reengagement(), False),
        (GraphFailure.token_expired(), False),
        (GraphFailure.server_error(), False),
    ],
    ids=["130429", "131056", "131016", "80007", "131047", "190", "131000"],
)
def test_only_codes_meta_documents_as_not_taken_may_be_sent_again(
    sender: WhatsAppCloudSender, graph: StandInGraph, channel: Channel, failure: GraphFailure, retry_safe: bool
) -> None:
    graph.fail_next(failure)

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "4915112345678", "Hi")

    assert (failed.value.code, failed.value.retry_safe) == (str(failure.code), retry_safe)
    assert graph.sent == []


def test_after_repeated_server_errors_sends_stop_and_fail_at_once_as_retry_safe(
    graph: StandInGraph, channel: Channel
) -> None:
    circuit = Circuit("graph", failures=3, reset_after_s=60.0, is_outage=graph_outage)
    sender = WhatsAppCloudSender(graph.base_url, timeout_ms=2000, circuit=circuit)
    graph.fail_next(*[GraphFailure.server_error()] * 3)
    for _ in range(3):
        with pytest.raises(DeliveryFailed):
            sender.send_text(channel, "4915112345678", "Hi")

    with pytest.raises(DeliveryFailed) as failed:
        sender.send_text(channel, "4915112345678", "Hi")

    assert failed.value.retry_safe
    assert "circuit is open" in failed.value.reason
    assert not sender.available
    assert len(graph.requests) == 3  # the fourth never left


def test_rate_limits_do_not_open_the_circuit(graph: StandInGraph, channel: Channel) -> None:
    circuit = Circuit("graph", failures=2, reset_after_s=60.0, is_outage=graph_outage)
    sender = WhatsAppCloudSender(graph.base_url, timeout_ms=2000, circuit=circuit)
    graph.fail_next(GraphFailure.throughput(), GraphFailure.throughput(), GraphFailure.throughput())
    for _ in range(3):
        with pytest.raises(DeliveryFailed):
            sender.send_text(channel, "4915112345678", "Hi")

    assert sender.available  # one number throttled is no outage of the Graph API


class ForwardProxy:
    """An HTTP proxy that answers every request itself, as Graph would, and keeps the request lines."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        answer = b'{"messages": [{"id": "wamid.PROXIED"}]}'
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as incoming:
                self.request_lines.append(incoming.readline().decode().strip())
                length = 0
                while (line := incoming.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    length = int(value) if name.lower() == "content-length" else length
                incoming.read(length)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    yield server
    server.close()


def test_the_environments_proxy_carries_the_sends(
    proxy: ForwardProxy, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment whose only way out is a proxy (HTTPS_PROXY / HTTP_PROXY) still reaches Meta."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    sent = WhatsAppCloudSender("http://graph.example/v24.0", timeout_ms=2000).send_text(channel, "4915112345678", "Hi")

    assert sent == "wamid.PROXIED"
    assert proxy.request_lines == ["POST http://graph.example/v24.0/106540352242922/messages HTTP/1.1"]


def test_a_host_in_no_proxy_is_reached_directly(
    proxy: ForwardProxy, graph: StandInGraph, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    WhatsAppCloudSender(graph.base_url, timeout_ms=2000).send_text(channel, "4915112345678", "Hi")

    assert proxy.request_lines == []
    assert len(graph.sent) == 1
