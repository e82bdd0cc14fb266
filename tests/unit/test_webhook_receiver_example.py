"""The example receiver of documentation/examples, as a business would run it, fed POSTs the way the
service builds and signs them (`WebhookDelivery.body/headers`, `domain.webhooks.sign`)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from adapters.webhooks.sender import RequestsWebhookSender
from domain.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAttempt, WebhookDelivery, sign

EXAMPLE = Path(__file__).resolve().parents[2] / "documentation" / "examples" / "webhook_receiver.py"
SECRET = "whsec_4f8a1c0e9b7d6a5f3e2d1c0b"
NOTIFICATION = {"kind": "demo_booked", "conversation_id": 42, "demo_at": "2026-03-02T15:00:00+01:00"}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = example.Receiver(("127.0.0.1", 0), SECRET)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def url_of(receiver: Any) -> str:
    return f"http://127.0.0.1:{receiver.server_address[1]}/mcagent"


def delivery(event_id: str = "evt_01JNQ8") -> WebhookDelivery:
    created = datetime.now(UTC) - timedelta(seconds=40)
    return WebhookDelivery.first("usr_1", 7, event_id, "https://crm.example.com/mcagent", created)


def signed(
    attempt_of: WebhookDelivery | None = None, *, sent_at: datetime | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of the next POST of a delivery, as the service sends them."""
    of = attempt_of or delivery()
    sent_at = sent_at or datetime.now(UTC)
    body = of.body(NOTIFICATION, "notification.created", sent_at)
    return body, of.headers(secret, body, sent_at)


def post(receiver: Any, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url_of(receiver), data=body, headers=headers, timeout=5)


def test_a_signed_event_is_accepted_and_processed(receiver: Any, capsys: pytest.CaptureFixture[str]) -> None:
    body, headers = signed()

    answer = post(receiver, body, headers)

    assert answer.status_code == 200
    [event] = receiver.events
    assert event["event_id"] == "evt_01JNQ8"
    assert event["notification"] == NOTIFICATION
    assert "notification.created evt_01JNQ8" in capsys.readouterr().out


def test_the_next_attempt_of_a_processed_event_is_answered_200_and_not_processed_again(receiver: Any) -> None:
    first = delivery()
    body, headers = signed(first)
    assert post(receiver, body, headers).status_code == 200
    # The service did not get that answer (a timeout, say) and tries again: attempt 2, same event id.
    timed_out = WebhookAttempt(1, datetime.now(UTC), None, "timed out after 5000 ms", 5_000)
    retried = first.answered(timed_out, accepted=False)
    again_body, again_headers = signed(retried)
    assert again_body != body

    answers = [post(receiver, again_body, again_headers), post(receiver, body, headers)]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert [event["event_id"] for event in receiver.events] == ["evt_01JNQ8"]
    assert receiver.events[0]["attempt"] == 1


def test_different_events_are_each_processed(receiver: Any) -> None:
    for event_id in ("evt_a", "evt_b"):
        assert post(receiver, *signed(delivery(event_id))).status_code == 200

    assert [event["event_id"] for event in receiver.events] == ["evt_a", "evt_b"]


def test_a_tampered_body_is_refused_401(receiver: Any) -> None:
    body, headers = signed()
    tampered = body.replace(b'"conversation_id":42', b'"conversation_id":43')
    assert tampered != body

    answer = post(receiver, tampered, headers)

    assert (answer.status_code, answer.text) == (401, "bad signature")
    assert receiver.events == []


def test_a_body_signed_with_another_secret_is_refused_401(receiver: Any) -> None:
    answer = post(receiver, *signed(secret="whsec_not_the_business_secret"))

    assert answer.status_code == 401
    assert receiver.events == []


def test_a_post_without_a_signature_is_refused_401(receiver: Any) -> None:
    body, headers = signed()
    del headers[SIGNATURE_HEADER]

    assert post(receiver, body, headers).status_code == 401


@pytest.mark.parametrize("age", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_an_event_sent_more_than_five_minutes_from_now_is_refused_400(receiver: Any, age: timedelta) -> None:
    answer = post(receiver, *signed(sent_at=datetime.now(UTC) - age))

    assert answer.status_code == 400
    assert answer.text.startswith("stale")
    assert receiver.events == []


def test_a_timestamp_header_other_than_sent_at_is_refused_400(receiver: Any) -> None:
    body, headers = signed()
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) - 60)

    answer = post(receiver, body, headers)

    assert (answer.status_code, answer.text) == (400, "the timestamp header does not match sent_at")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"event_id": "evt_1"}', b'{"event_id": 7, "sent_at": 0}'])
def test_a_signed_body_that_is_not_an_event_is_refused_400(receiver: Any, body: bytes) -> None:
    answer = post(receiver, body, {SIGNATURE_HEADER: sign(SECRET, body), "Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.text.startswith("malformed")


def test_verify_returns_the_event_and_reads_header_names_in_any_case() -> None:
    sent_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    body, headers = signed(sent_at=sent_at)

    event = example.verify(SECRET, body, {name.lower(): value for name, value in headers.items()}, sent_at.timestamp())

    assert event["event_id"] == "evt_01JNQ8"
    assert event["sent_at"] == int(sent_at.timestamp())


def test_verify_raises_rejected_with_the_status_to_answer() -> None:
    sent_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    body, headers = signed(sent_at=sent_at)

    with pytest.raises(example.Rejected) as stale:
        example.verify(SECRET, body, headers, sent_at.timestamp() + 301)
    with pytest.raises(example.Rejected) as forged:
        example.verify("whsec_other", body, headers, sent_at.timestamp())

    assert (stale.value.status, forged.value.status) == (400, 401)
    assert example.verify(SECRET, body, headers, sent_at.timestamp() + 300)["event_id"] == "evt_01JNQ8"


def test_what_the_service_sender_posts_the_example_accepts(receiver: Any) -> None:
    response = RequestsWebhookSender(2_000, allow_private=True).post(url_of(receiver), *signed())

    assert (response.status, response.error) == (200, None)
    assert len(receiver.events) == 1


def test_the_example_imports_only_the_standard_library() -> None:
    imported = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])

    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_example_runs_as_a_script_copied_on_its_own(tmp_path: Path) -> None:
    copy = tmp_path / "webhook_receiver.py"
    copy.write_text(EXAMPLE.read_text())
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen(
        [sys.executable, str(copy), "0"],
        cwd=tmp_path,
        env={**environment, "MCAGENT_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().rsplit(" ", 1)[1])
        body, headers = signed()

        answer = requests.post(f"http://127.0.0.1:{port}/", data=body, headers=headers, timeout=5)

        assert answer.status_code == 200
        assert "evt_01JNQ8" in process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_the_example_will_not_start_without_a_secret(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "MCAGENT_WEBHOOK_SECRET"}

    finished = subprocess.run(
        [sys.executable, str(EXAMPLE), "0"], env=environment, capture_output=True, text=True, timeout=10
    )

    assert finished.returncode != 0
    assert "MCAGENT_WEBHOOK_SECRET" in finished.stderr
