"""The web chat widget's public endpoints through Flask's test client, on the embedded (in-memory) container:
sessions, sending, history, live events, long polling, cross-site rules, limits, and one visitor never
seeing another's conversation. The in-process worker is driven by the test (`drain`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from application.use_cases.process_pending_messages import ProcessScope
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

SITE = "https://shop.example"
ENV = {"WEBCHAT_STREAM_SECONDS": "1", "WEBCHAT_VISITOR_PER_MINUTE": "3", "WEBCHAT_WIDGET_PER_MINUTE": "50"}


class Widget:
    def __init__(self, client: FlaskClient, container: Container, widget_id: str, user_id: str, key: str) -> None:
        self.client, self.container, self.id = client, container, widget_id
        self.user_id, self.key = user_id, key

    def session(self, token: str | None = None, origin: str = SITE) -> TestResponse:
        body = {} if token is None else {"token": token}
        return self.client.post(f"/webchat/{self.id}/sessions", json=body, headers={"Origin": origin})

    def visitor(self) -> Visitor:
        started = self.session()
        assert started.status_code == 201, started.data
        return Visitor(self, started.get_json()["token"])

    def drain(self) -> None:
        queue, process = self.container.queue(), self.container.process_pending_messages()
        while queue.jobs:
            process(ProcessScope(queue.jobs.popleft()))


class Visitor:
    def __init__(self, widget: Widget, token: str) -> None:
        self.widget, self.token = widget, token

    def headers(self, origin: str = SITE) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Origin": origin}

    def send(self, text: str, client_message_id: str | None = None) -> TestResponse:
        return self.widget.client.post(
            f"/webchat/{self.widget.id}/messages",
            json={"text": text, "client_message_id": client_message_id or uuid.uuid4().hex},
            headers=self.headers(),
        )

    def history(self, **params: Any) -> dict[str, Any]:
        answer = self.widget.client.get(
            f"/webchat/{self.widget.id}/messages", query_string=params, headers=self.headers()
        )
        assert answer.status_code == 200, answer.data
        body: dict[str, Any] = answer.get_json()
        return body

    def texts(self) -> list[tuple[str, str]]:
        return [(m["from"], m["text"]) for m in self.history()["messages"]]


@pytest.fixture
def widget() -> Iterator[Widget]:
    container = build_container(Settings.from_env(ENV, dev=True))
    client = create_app(container).test_client()
    admin = {"x-api-key": container.settings().admin_api_key}
    user = client.post("/users", json={"email": "owner@shop.example"}, headers=admin).get_json()
    user_id, key = user["user"]["user_id"], user["api_key"]
    channel = client.post(
        f"/users/{user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "shop.example", "display_name": "Shop", "allowed_origins": [SITE]},
        headers={"x-api-key": key},
    )
    assert channel.status_code == 201, channel.data
    widget_id = channel.get_json()["phone_number_id"]
    assert channel.get_json()["allowed_origins"] == [SITE]
    agent = client.post(
        f"/users/{user_id}/agents",
        json={"name": "Site", "prompt_id": "pmpt_site", "phone_number_id": widget_id},
        headers={"x-api-key": key},
    )
    assert agent.status_code == 201, agent.data
    assert client.post(f"/users/{user_id}/credits", json={"amount": 100}, headers=admin).status_code == 201
    yield Widget(client, container, widget_id, user_id, key)


# --- sessions ----------------------------------------------------------------------------------------


def test_a_new_visitor_gets_a_token_and_coming_back_with_it_is_the_same_visitor(widget: Widget) -> None:
    first = widget.session()
    assert first.status_code == 201
    body = first.get_json()
    assert body["visitor_id"].startswith("vis_") and body["widget"] == {"title": "Shop"}

    again = widget.session(body["token"])
    assert again.status_code == 200
    assert again.get_json()["visitor_id"] == body["visitor_id"]


def test_an_altered_or_foreign_token_starts_a_new_visitor(widget: Widget) -> None:
    token = widget.session().get_json()["token"]
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")

    assert widget.session(altered).status_code == 201
    assert widget.session("not-a-token").status_code == 201


def test_an_unknown_widget_or_a_channel_of_another_kind_is_not_found(widget: Widget) -> None:
    answer = widget.client.post("/webchat/wc_nope/sessions", json={}, headers={"Origin": SITE})
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "not_found"


# --- sending and reading -----------------------------------------------------------------------------


def test_a_visitors_message_is_answered_through_the_pipeline_and_both_are_in_the_history(widget: Widget) -> None:
    visitor = widget.visitor()
    sent = visitor.send("Do you ship to Spain?")
    assert sent.status_code == 202, sent.data
    assert sent.get_json()["message"]["from"] == "visitor"

    widget.drain()

    texts = visitor.texts()
    assert texts[0] == ("visitor", "Do you ship to Spain?")
    assert [who for who, _ in texts] == ["visitor", "agent"]
    assert "Do you ship to Spain?" in texts[1][1]  # the offline responder echoes what it answers
    credits = widget.client.get(f"/users/{widget.user_id}/credits", headers={"x-api-key": widget.key}).get_json()
    assert credits["balance"] == 99  # one AI turn, one credit, as on any channel


def test_a_burst_becomes_one_turn_answered_in_order(widget: Widget) -> None:
    visitor = widget.visitor()
    for text in ("one", "two", "three"):
        assert visitor.send(text).status_code == 202

    widget.drain()

    texts = visitor.texts()
    assert texts[:3] == [("visitor", "one"), ("visitor", "two"), ("visitor", "three")]
    assert len(texts) == 4  # one reply for the three


def test_the_same_message_sent_twice_is_stored_once(widget: Widget) -> None:
    visitor = widget.visitor()
    first = visitor.send("hello", "c0ffee00-0000-4000-8000-000000000001")
    again = visitor.send("hello", "c0ffee00-0000-4000-8000-000000000001")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["message"]["id"] == first.get_json()["message"]["id"]
    assert visitor.texts() == [("visitor", "hello")]


def test_a_visitor_never_sees_another_visitors_conversation(widget: Widget) -> None:
    alice, bob = widget.visitor(), widget.visitor()
    alice.send("alice's secret")
    widget.drain()

    assert bob.texts() == []
    bob.send("bob here")
    widget.drain()
    assert all("alice" not in text for _, text in bob.texts())
    assert ("visitor", "alice's secret") in alice.texts()
    assert all("bob" not in text for _, text in alice.texts())


def test_a_token_is_required_and_a_token_of_another_widget_is_refused(widget: Widget) -> None:
    visitor = widget.visitor()
    no_token = widget.client.get(f"/webchat/{widget.id}/messages", headers={"Origin": SITE})
    assert no_token.status_code == 401
    assert no_token.get_json()["error"]["code"] == "unauthorized"

    other = widget.client.post(
        f"/users/{widget.user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "other.example"},
        headers={"x-api-key": widget.key},
    ).get_json()["phone_number_id"]
    foreign = widget.client.get(f"/webchat/{other}/messages", headers=visitor.headers())
    assert foreign.status_code == 401


def test_the_history_after_a_cursor_holds_only_what_is_newer(widget: Widget) -> None:
    visitor = widget.visitor()
    visitor.send("first")
    widget.drain()
    cursor = visitor.history()["cursor"]

    assert visitor.history(after=cursor)["messages"] == []
    visitor.send("second")
    assert [m["text"] for m in visitor.history(after=cursor)["messages"]] == ["second"]


# --- what a visitor may send ------------------------------------------------------------------------


def test_an_empty_a_too_long_or_an_oversized_message_gets_a_clear_error_and_nothing_is_stored(widget: Widget) -> None:
    visitor = widget.visitor()

    empty = visitor.send("   ")
    assert (empty.status_code, empty.get_json()["error"]["field"]) == (422, "text")
    too_long = visitor.send("x" * 2001)
    assert (too_long.status_code, too_long.get_json()["error"]["field"]) == (422, "text")
    oversized = widget.client.post(
        f"/webchat/{widget.id}/messages", data=b"{" + b" " * 17_000 + b"}", headers=visitor.headers()
    )
    assert (oversized.status_code, oversized.get_json()["error"]["code"]) == (413, "payload_too_large")
    bad_id = visitor.send("hi", "no")
    assert (bad_id.status_code, bad_id.get_json()["error"]["field"]) == (422, "client_message_id")

    assert visitor.texts() == []


def test_a_visitor_over_its_limit_waits_with_retry_after_and_others_still_write(widget: Widget) -> None:
    visitor, other = widget.visitor(), widget.visitor()
    for n in range(3):
        assert visitor.send(f"message {n}").status_code == 202

    limited = visitor.send("one too many")

    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.send("I can still write").status_code == 202
    assert [text for _, text in visitor.texts()] == ["message 0", "message 1", "message 2"]


def test_a_widget_without_an_agent_says_so_instead_of_taking_messages_into_a_void(widget: Widget) -> None:
    channel = widget.client.post(
        f"/users/{widget.user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "new.example"},
        headers={"x-api-key": widget.key},
    ).get_json()["phone_number_id"]
    token = widget.client.post(f"/webchat/{channel}/sessions", json={}).get_json()["token"]

    answer = widget.client.post(
        f"/webchat/{channel}/messages",
        json={"text": "anyone?", "client_message_id": uuid.uuid4().hex},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 409


# --- cross-site ---------------------------------------------------------------------------------------


def test_an_allowed_page_may_read_the_answers_and_its_preflight_is_answered(widget: Widget) -> None:
    visitor = widget.visitor()
    answer = widget.client.get(f"/webchat/{widget.id}/messages", headers=visitor.headers())
    assert answer.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in answer.headers["Vary"]

    preflight = widget.client.options(
        f"/webchat/{widget.id}/messages",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == SITE
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_a_page_on_another_site_is_refused_and_not_told_it_may_read(widget: Widget) -> None:
    refused = widget.session(origin="https://evil.example")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused.headers
    preflight = widget.client.options(f"/webchat/{widget.id}/sessions", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 403

    visitor = widget.visitor()
    sent = widget.client.post(
        f"/webchat/{widget.id}/messages",
        json={"text": "hi", "client_message_id": uuid.uuid4().hex},
        headers=visitor.headers("https://evil.example"),
    )
    assert sent.status_code == 403
    assert visitor.texts() == []


def test_the_allow_list_can_be_changed_and_an_invalid_one_is_refused(widget: Widget) -> None:
    path = f"/users/{widget.user_id}/phone_numbers/{widget.id}"
    headers = {"x-api-key": widget.key}
    bad = widget.client.patch(path, json={"allowed_origins": ["shop.example/page"]}, headers=headers)
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (422, "allowed_origins")

    changed = widget.client.patch(path, json={"allowed_origins": ["https://*.shop.example"]}, headers=headers)
    assert changed.get_json()["allowed_origins"] == ["https://*.shop.example"]
    assert widget.session(origin="https://www.shop.example").status_code == 201
    assert widget.session(origin=SITE).status_code == 403


# --- live ---------------------------------------------------------------------------------------------


def _events(stream: str) -> list[tuple[str, str]]:
    found = []
    for block in stream.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], fields.get("data", "")))
    return found


def test_the_event_stream_carries_what_the_visitor_has_not_seen_then_ends(widget: Widget) -> None:
    visitor = widget.visitor()
    visitor.send("hello there")
    widget.drain()

    answer = widget.client.get(f"/webchat/{widget.id}/events", headers=visitor.headers())

    assert answer.status_code == 200
    assert answer.content_type.startswith("text/event-stream")
    events = _events(answer.get_data(as_text=True))
    assert [kind for kind, _ in events] == ["message", "message"]
    assert '"hello there"' in events[0][1]


def test_a_reply_reaches_an_open_stream_live_with_the_typing_signal_before_it(widget: Widget) -> None:
    visitor = widget.visitor()
    visitor.send("are you there?")
    cursor = visitor.history()["cursor"]
    answered = threading.Timer(0.3, widget.drain)
    answered.start()

    started = time.monotonic()
    answer = widget.client.get(
        f"/webchat/{widget.id}/events", query_string={"after": cursor}, headers=visitor.headers()
    )
    events = _events(answer.get_data(as_text=True))
    answered.join()

    assert [kind for kind, _ in events] == ["typing", "message"]
    assert '"from": "agent"' in events[1][1]
    assert time.monotonic() - started < 3


def test_a_long_poll_returns_as_soon_as_the_reply_is_there(widget: Widget) -> None:
    visitor = widget.visitor()
    visitor.send("ping")
    cursor = visitor.history()["cursor"]
    threading.Timer(0.3, widget.drain).start()

    started = time.monotonic()
    body = visitor.history(after=cursor, wait=10)

    assert [m["from"] for m in body["messages"]] == ["agent"]
    assert time.monotonic() - started < 5


def test_when_the_process_streams_to_as_many_widgets_as_it_may_a_stream_answers_at_once(widget: Widget) -> None:
    widget.client.application.extensions["webchat_streams"] = threading.BoundedSemaphore(1)
    widget.client.application.extensions["webchat_streams"].acquire()
    visitor = widget.visitor()
    visitor.send("hi")

    started = time.monotonic()
    answer = widget.client.get(f"/webchat/{widget.id}/events", headers=visitor.headers())

    assert time.monotonic() - started < 0.5
    text = answer.get_data(as_text=True)
    assert text.startswith("retry: 3000")
    assert [kind for kind, _ in _events(text)] == ["message"]
