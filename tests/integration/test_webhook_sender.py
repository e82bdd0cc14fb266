"""RequestsWebhookSender posting to a local receiver over real sockets (http, https with a test CA, IPv6).

Names the sender must not call are given to it through its `resolve` hook (`receiver.test` is not in
any DNS), so the tests never send anything past this machine.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.webhooks.sender import USER_AGENT, RequestsWebhookSender, is_public
from domain.webhooks import WebhookDelivery

SECRET = "whsec_test_0123456789abcdef"
SLOW_S = 3.0
HUGE_LIMIT = 64 * 1024 * 1024
FAILURE_BODY = "the database is down; " + "x" * 1_000


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver(ThreadingHTTPServer):
    """A business's receiver that answers by path: /hook 200, /status/<code>, /slow, /redirect, /huge/<code>."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.received: list[Received] = []
        self.connections = 0
        self.huge_bytes_written = 0
        self.huge_answer_ended = threading.Event()
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "receiver.test", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1  # once per accepted connection, on the serving thread
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver allows
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path == "/hook":
            self._answer(200, b"ok")
        elif self.path.startswith("/status/"):
            self._answer(int(self.path.rsplit("/", 1)[1]), FAILURE_BODY.encode())
        elif self.path == "/slow":
            self.server.stopping.wait(SLOW_S)
            self._answer(200, b"late")
        elif self.path == "/redirect":
            self._answer(302, b"", {"Location": "/landed"})
        elif self.path.startswith("/huge/"):
            self._stream_without_end(int(self.path.rsplit("/", 1)[1]))

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream_without_end(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%x\r\n%s\r\n" % (65_536, b"y" * 65_536)
        self.close_connection = True
        try:
            while self.server.huge_bytes_written < HUGE_LIMIT and not self.server.stopping.is_set():
                self.wfile.write(chunk)
                self.server.huge_bytes_written += 65_536
        except OSError:
            pass  # the sender stopped reading and closed: what this answer is for
        finally:
            self.server.huge_answer_ended.set()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent; the tests read `received`."""


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stopping.set()
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as running:
        yield running


def fixed(*addresses: str) -> Callable[[str], list[str]]:
    """A resolver that knows only `receiver.test`."""

    def resolve(host: str) -> list[str]:
        if host != "receiver.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(addresses)

    return resolve


def local_sender(timeout_ms: int = 2_000, **options: Any) -> RequestsWebhookSender:
    return RequestsWebhookSender(timeout_ms, allow_private=True, resolve=fixed("127.0.0.1"), **options)


def signed_post() -> tuple[bytes, dict[str, str]]:
    sent_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    delivery = WebhookDelivery.first("usr_1", 7, "evt_01J5", "https://example.com/hook", sent_at)
    body = delivery.body({"kind": "hot_lead", "name": "Ana Müller", "score": 3}, "notification.created", sent_at)
    return body, delivery.headers(SECRET, body, sent_at)


def test_signed_post_arrives_byte_for_byte_with_its_headers(receiver: Receiver) -> None:
    body, headers = signed_post()

    response = local_sender().post(receiver.url("/hook"), body, headers)

    assert (response.status, response.error, response.accepted) == (200, None, True)
    [arrived] = receiver.received
    assert arrived.body == body
    for name, value in headers.items():
        assert arrived.headers[name.lower()] == value
    assert arrived.headers["user-agent"] == USER_AGENT
    assert arrived.headers["host"] == f"receiver.test:{receiver.port}"


def test_posts_to_one_receiver_share_a_kept_alive_connection(receiver: Receiver) -> None:
    lookups: list[str] = []

    def resolve(host: str) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    sender = RequestsWebhookSender(2_000, allow_private=True, resolve=resolve)
    body, headers = signed_post()

    answers = [sender.post(receiver.url("/hook"), body, headers) for _ in range(3)]

    assert [answer.status for answer in answers] == [200, 200, 200]
    assert receiver.connections == 1
    assert lookups == ["receiver.test"]


@pytest.mark.parametrize("status", [500, 503, 404, 401])
def test_an_error_status_is_a_failed_attempt_showing_the_start_of_the_answer(receiver: Receiver, status: int) -> None:
    body, headers = signed_post()

    response = local_sender().post(receiver.url(f"/status/{status}"), body, headers)

    assert response.status == status
    assert not response.accepted
    assert response.error == f"HTTP {status}: {FAILURE_BODY[:200]}"


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(receiver: Receiver) -> None:
    body, headers = signed_post()

    response = local_sender(timeout_ms=300).post(receiver.url("/slow"), body, headers)

    assert (response.status, response.error) == (None, "timed out after 300 ms")
    assert 300 <= response.duration_ms < SLOW_S * 1000 / 2


def test_a_closed_port_is_a_failed_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there

    response = local_sender().post(f"http://receiver.test:{port}/hook", *signed_post())

    assert (response.status, response.error) == (None, "connection refused")


def test_a_name_that_does_not_resolve_is_a_failed_attempt() -> None:
    response = local_sender().post("http://nowhere.test/hook", *signed_post())

    assert response.status is None
    assert response.error == "could not resolve nowhere.test: Name or service not known"


def test_a_host_name_the_resolver_cannot_encode_is_a_failed_attempt() -> None:
    response = RequestsWebhookSender(2_000).post("http://hooks..example.com/hook", *signed_post())

    assert (response.status, response.error) == (None, "could not resolve hooks..example.com: not a valid host name")


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    response = local_sender().post(receiver.url("/redirect"), *signed_post())

    assert response.status == 302
    assert not response.accepted
    assert response.error == "HTTP 302: redirect to /landed not followed"
    assert [request.path for request in receiver.received] == ["/redirect"]


@pytest.mark.parametrize("status", [500, 200])
def test_a_huge_answer_is_read_no_further_than_its_start(receiver: Receiver, status: int) -> None:
    started = time.monotonic()

    response = local_sender().post(receiver.url(f"/huge/{status}"), *signed_post())

    assert time.monotonic() - started < 2
    assert response.status == status
    assert response.error == (None if status == 200 else "HTTP 500: " + "y" * 200)
    assert receiver.huge_answer_ended.wait(timeout=5)
    # What the kernel's buffers took before the sender closed the connection: far from the whole.
    assert receiver.huge_bytes_written < HUGE_LIMIT / 4


def test_https_is_verified_against_the_url_host_while_the_socket_goes_to_the_checked_address(
    tmp_path: Path,
) -> None:
    tls = Certificates(tmp_path, "receiver.test")
    with_tls = Receiver(tls=tls.server_context)
    with serving(with_tls) as running:
        response = local_sender(ca_bundle=tls.ca_file).post(running.url("/hook", scheme="https"), *signed_post())

        assert (response.status, response.error) == (200, None)
        assert tls.server_names == ["receiver.test"]
        assert running.received[0].headers["host"] == f"receiver.test:{running.port}"


def test_a_certificate_for_another_host_is_a_tls_failure(tmp_path: Path) -> None:
    tls = Certificates(tmp_path, "other.test")
    with serving(Receiver(tls=tls.server_context)) as running:
        response = local_sender(ca_bundle=tls.ca_file).post(running.url("/hook", scheme="https"), *signed_post())

        assert response.status is None
        assert response.error is not None
        assert response.error.startswith("TLS error: ")
        assert "Hostname mismatch" in response.error
        assert running.received == []


def test_a_certificate_from_an_unknown_authority_is_a_tls_failure(tmp_path: Path) -> None:
    tls = Certificates(tmp_path, "receiver.test")
    with serving(Receiver(tls=tls.server_context)) as running:
        response = local_sender().post(running.url("/hook", scheme="https"), *signed_post())

        assert response.status is None
        assert response.error is not None
        assert response.error.startswith("TLS error: ")
        assert "certificate verify failed" in response.error


def test_https_to_a_plain_http_receiver_is_a_tls_failure(receiver: Receiver) -> None:
    response = local_sender().post(receiver.url("/hook", scheme="https"), *signed_post())

    assert response.status is None
    assert response.error is not None
    assert response.error.startswith("TLS error: ")
    assert receiver.received == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.7",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.251",
        "::ffff:127.0.0.1",
        "fd00::1",
        "fe80::1",
        "::",
    ],
)
def test_a_host_with_a_private_or_local_address_is_refused_before_any_connection(
    receiver: Receiver, address: str
) -> None:
    # The receiver's own address comes first: had the check let the name through, the POST would arrive.
    sender = RequestsWebhookSender(2_000, resolve=fixed("127.0.0.1", address))

    response = sender.post(receiver.url("/hook"), *signed_post())

    assert response.status is None
    assert response.error == "refused: receiver.test resolves to a private or local address"
    assert receiver.connections == 0
    assert not is_public(address)


@pytest.mark.parametrize("address", ["10.0.0.7", "169.254.169.254", "::1", "127.0.0.1"])
def test_private_addresses_are_called_when_the_operator_allows_them(receiver: Receiver, address: str) -> None:
    sender = RequestsWebhookSender(2_000, allow_private=True, resolve=fixed("127.0.0.1", address))

    response = sender.post(receiver.url("/hook"), *signed_post())

    assert (response.status, response.error) == (200, None)
    assert len(receiver.received) == 1


def test_an_ip_address_in_the_url_is_checked_like_a_name(receiver: Receiver) -> None:
    response = RequestsWebhookSender(2_000).post(receiver.url("/hook", host="127.0.0.1"), *signed_post())

    assert response.error == "refused: 127.0.0.1 resolves to a private or local address"
    assert receiver.connections == 0


def test_the_system_resolver_is_checked_and_used_by_default(receiver: Receiver) -> None:
    refused = RequestsWebhookSender(2_000).post(receiver.url("/hook", host="localhost"), *signed_post())
    allowed = RequestsWebhookSender(2_000, allow_private=True).post(
        receiver.url("/hook", host="localhost"), *signed_post()
    )

    assert refused.error == "refused: localhost resolves to a private or local address"
    assert (allowed.status, allowed.error) == (200, None)


def test_ipv6_loopback_is_refused_and_reached_when_allowed() -> None:
    with serving(Receiver(host="::1")) as running:
        url = running.url("/hook", host="[::1]")

        refused = RequestsWebhookSender(2_000).post(url, *signed_post())
        allowed = RequestsWebhookSender(2_000, allow_private=True).post(url, *signed_post())

        assert refused.error == "refused: ::1 resolves to a private or local address"
        assert (allowed.status, allowed.error) == (200, None)
        assert running.connections == 1


def test_the_socket_goes_to_the_checked_address_without_a_second_lookup(receiver: Receiver) -> None:
    """DNS rebinding: a name may answer differently on its next lookup; there is none."""
    answers = iter([["127.0.0.1"], ["203.0.113.9"]])
    lookups: list[str] = []

    def rebinding(host: str) -> list[str]:
        lookups.append(host)
        return next(answers)

    response = RequestsWebhookSender(2_000, allow_private=True, resolve=rebinding).post(
        receiver.url("/hook"), *signed_post()
    )

    assert (response.status, response.error) == (200, None)
    assert lookups == ["receiver.test"]


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"],
)
def test_public_addresses_may_be_called(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("address", ["2002:a00:7::1", "64:ff9b::7f00:1", "::ffff:10.0.0.1"])
def test_ipv6_addresses_carrying_a_private_ipv4_address_are_not_public(address: str) -> None:
    assert not is_public(address)


class Certificates:
    """A certificate authority of the test's own and a server certificate for `host` signed by it."""

    def __init__(self, directory: Path, host: str) -> None:
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcagent test CA")])
        ca = (
            self._valid(x509.CertificateBuilder(), now)
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            self._valid(x509.CertificateBuilder(), now)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = str(directory / "ca.pem")
        Path(self.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain, key_file = directory / "server.pem", directory / "server.key"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.server_names: list[str | None] = []
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(chain, key_file)
        self.server_context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)

    @staticmethod
    def _valid(builder: x509.CertificateBuilder, now: datetime) -> x509.CertificateBuilder:
        return (
            builder.serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
        )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
