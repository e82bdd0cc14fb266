"""Lead extraction and notifications end to end: gunicorn, `mcagent worker`, PostgreSQL, Redis, the stand-in
OpenAI answering structured outputs, and a receiver that checks every webhook as the documented example does.

A conversation that goes quiet becomes a lead through the API, the business is told what matters (listed,
and POSTed signed to its URL, retried through the receiver's failures without a duplicate), and with two
worker groups each extraction still runs once.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from adapters.redis.client import redis_client
from adapters.rq.background import RqBackgroundJobs
from tests.e2e.harness import ServiceProcess, System, Tenant, running, wait_for
from tests.support.standin_openai import StandInOpenAI

pytestmark = pytest.mark.timeout(240)

EXAMPLE = Path(__file__).resolve().parents[2] / "documentation" / "examples" / "webhook_receiver.py"

LEAD = {
    "name": "Ana Souza",
    "email": "ana@shop.example",
    "company": "Shop Example",
    "intent": "book a demo",
    "urgency": 3,
    "budget": 3,
    "fit": 3,
    "engagement": 3,
    "demo_datetime": "2026-12-08T15:00:00-03:00",
    "smart_notification": "Ana wants a demo on Tuesday at 15:00 her time; confirm it.",
}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Receiver:
    """A business's endpoint: verifies each POST with the documented example's `verify`, answers 500 to the
    first `fail_first` POSTs on purpose, and counts what it accepted by event id."""

    def __init__(self, fail_first: int = 0) -> None:
        self.secret = ""
        self.fail_first = fail_first
        self.posts: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        example = _example()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.posts.append({"headers": dict(self.headers), "body": raw})
                    failing = len(receiver.posts) <= receiver.fail_first
                if failing:
                    self._answer(500)
                    return
                try:
                    event = example.verify(receiver.secret, raw, dict(self.headers), time.time())
                except example.Rejected as rejected:
                    receiver.rejected.append(str(rejected))
                    self._answer(rejected.status)
                    return
                with receiver._lock:
                    receiver.accepted.setdefault(event["event_id"], event)
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/mcagent"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kinds(self) -> list[str]:
        with self._lock:
            return sorted(event["type"] for event in self.accepted.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=1)
    yield server
    server.close()


def _lead_system(make_system: Callable[..., System], **overrides: str) -> System:
    settings = {
        "EXTRACTION_INTERVAL": "1000",
        "OUTGOING_WEBHOOK_ALLOW_PRIVATE": "true",
        "OUTGOING_WEBHOOK_RETRY_MS": "300",
    }
    return make_system(**{**settings, **overrides})


def _extractions(system: System, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = system.api("GET", f"/users/{tenant.user_id}/extractions", tenant.api_key, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["extractions"]
    return items


def _notifications(system: System, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = system.api("GET", f"/users/{tenant.user_id}/notifications", tenant.api_key, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["notifications"]
    return items


def test_a_quiet_conversation_becomes_a_lead_the_business_is_told_of_through_a_signed_webhook(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, receiver: Receiver
) -> None:
    openai_standin.answer_extractions_with(LEAD)
    with running(_lead_system(make_system)) as system:
        tenant = system.provision(phone_number_id="pn-leads")
        configured = system.api("PUT", f"/users/{tenant.user_id}/webhook", tenant.api_key, json={"url": receiver.url})
        assert configured.status_code == 201, configured.text
        receiver.secret = configured.json()["secret"]

        system.send_text(tenant, "15551230001", "Hi, I'm Ana from Shop Example, ana@shop.example", wamid="wamid.lead-1")
        system.send_text(tenant, "15551230001", "Could we do a demo Tuesday at 3pm?", wamid="wamid.lead-2")

        wait_for(lambda: _extractions(system, tenant), timeout=30, what="an extraction")
        lead = _extractions(system, tenant)[0]
        assert {k: lead[k] for k in ("name", "email", "company", "urgency", "budget", "fit", "engagement")} == {
            k: LEAD[k] for k in ("name", "email", "company", "urgency", "budget", "fit", "engagement")
        }
        assert lead["demo_datetime"] == "2026-12-08T15:00:00-03:00"
        assert lead["missing"] == {}

        # What the extraction read came from our database: both customer messages and the agent's replies.
        transcript = openai_standin.calls("extractions")[0]["input"]
        assert "ana@shop.example" in json.dumps(transcript) and "Tuesday at 3pm" in json.dumps(transcript)

        wait_for(
            lambda: receiver.kinds() == ["demo_booked", "hot_lead", "smart_notification"],
            timeout=30,
            what="three notifications accepted by the receiver",
        )
        listed = _notifications(system, tenant)
        assert sorted(n["kind"] for n in listed) == ["demo_booked", "hot_lead", "smart_notification"]
        assert all(n["read"] is False for n in listed)

        # The first POST failed on purpose: it was tried again under the same event id, and accepted once.
        event_ids = [post["headers"]["X-Mcagent-Event-Id"] for post in receiver.posts]
        assert len(event_ids) == 4 and len(set(event_ids)) == 3
        assert not receiver.rejected
        log = system.api("GET", f"/users/{tenant.user_id}/webhook/deliveries", tenant.api_key).json()["deliveries"]
        assert sorted(len(d["attempts"]) for d in log) == [1, 1, 2]
        assert {d["status"] for d in log} == {"delivered"}

        # Once the conversation is read to its end, no sweep reads it again while nothing new is said.
        wait_for(lambda: _read_to_the_end(system, tenant, lead["conversation_id"]), timeout=30, what="read to its end")
        readings = len(openai_standin.calls("extractions"))
        time.sleep(3)
        assert len(openai_standin.calls("extractions")) == readings
        history = system.api(
            "GET", f"/users/{tenant.user_id}/conversations/{lead['conversation_id']}/extractions", tenant.api_key
        ).json()["extractions"]
        assert len(history) == readings


def _read_to_the_end(system: System, tenant: Tenant, conversation_id: int) -> bool:
    conversation = system.api("GET", f"/users/{tenant.user_id}/conversations/{conversation_id}", tenant.api_key).json()
    history = system.api(
        "GET", f"/users/{tenant.user_id}/conversations/{conversation_id}/extractions", tenant.api_key
    ).json()["extractions"]
    return bool(history) and history[0]["through_sequence_no"] == conversation["last_sequence_no"]


def test_an_extraction_answered_with_invalid_fields_keeps_what_was_valid(
    make_system: Callable[..., System], openai_standin: StandInOpenAI
) -> None:
    openai_standin.answer_extractions_with(
        {**LEAD, "email": "ana at shop", "urgency": 7, "demo_datetime": "Tuesday 3pm", "smart_notification": None}
    )
    with running(_lead_system(make_system)) as system:
        tenant = system.provision(phone_number_id="pn-invalid")
        system.send_text(tenant, "15551230002", "Hi, I'm Ana", wamid="wamid.invalid-1")
        wait_for(lambda: _extractions(system, tenant), timeout=30, what="an extraction")
        lead = _extractions(system, tenant)[0]
        assert (lead["name"], lead["company"], lead["fit"]) == ("Ana Souza", "Shop Example", 3)
        assert lead["email"] is None and lead["urgency"] is None and lead["demo_datetime"] is None
        assert set(lead["missing"]) == {"email", "urgency", "demo_datetime", "smart_notification"}
        assert "not an e-mail address" in lead["missing"]["email"]
        assert "score from 1 to 3" in lead["missing"]["urgency"]


def test_two_worker_groups_run_each_extraction_once(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, clean_database: str
) -> None:
    """Two `mcagent worker` groups, as on two hosts: two sweepers and two background workers. Each of twenty
    conversations is also queued three times at once by hand, on top of what the sweepers find. Whatever
    runs when, no reading is made twice: one OpenAI call per stored reading, and every conversation read
    up to its last message."""
    openai_standin.latency_ms = 300
    system = _lead_system(make_system, EXTRACTION_INTERVAL="2000")
    with running(system, concurrency=1):
        second = ServiceProcess("workers-b", _worker_argv(), dict(system.env), system.log_dir)
        try:
            tenants = [system.provision(phone_number_id=f"pn-two-{n}") for n in range(2)]
            for n in range(20):
                system.send_text(tenants[n % 2], f"1555999{n:04d}", f"Hello, I'm customer {n}", wamid=f"wamid.two-{n}")
            wait_for(lambda: _answered(clean_database) == 20, timeout=90, what="20 replies")
            jobs = RqBackgroundJobs(redis_client(system.redis.url, socket_timeout_s=2.0), system.env["QUEUE_NAME"], 60)
            for conversation_id in [c for c, _ in _last_messages(clean_database)] * 3:
                jobs.enqueue_extraction(conversation_id)
            wait_for(lambda: _all_read(clean_database), timeout=90, what="every conversation read to its end")
            time.sleep(5)  # more sweeps of both groups: they find nothing new
        finally:
            second.stop()
        with psycopg.connect(clean_database) as conn:
            readings = conn.execute("SELECT conversation_id, through_sequence_no FROM extractions").fetchall()
        assert _all_read(clean_database)
        assert len(openai_standin.calls("extractions")) == len(readings), readings
        assert {c for c, _ in readings} == {c for c, _ in _last_messages(clean_database)}


def _last_messages(database_url: str) -> list[tuple[int, int]]:
    with psycopg.connect(database_url) as conn:
        return [
            (int(c), int(n)) for c, n in conn.execute("SELECT conversation_id, last_sequence_no FROM conversations")
        ]


def _all_read(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM extractions e"
            " WHERE e.conversation_id = c.conversation_id AND e.through_sequence_no = c.last_sequence_no)"
        ).fetchone()
    return row is not None and row[0] == 0


def _worker_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "entrypoints.cli", "worker"]


def _answered(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM messages WHERE direction = 'inbound' AND status = 'answered'"
        ).fetchone()
    return int(row[0]) if row else 0
