"""Web chat end to end: gunicorn, RQ workers, PostgreSQL, Redis and the stand-in OpenAI.

A visitor's message is answered through the same pipeline as any customer's, and the reply reaches the
visitor's open event stream (written by a worker process, carried over Redis pub/sub to the web process
holding the stream) without a reload, with the typing signal first; a person's reply through the API reaches
it the same way; another visitor sees nothing of it; cross-site rules hold behind gunicorn.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.e2e.harness import System
from tests.support.standin_openai import StandInOpenAI

pytestmark = pytest.mark.timeout(180)

SITE = "https://shop.example"


class Stream:
    """A visitor's live stream, read as the widget reads it: reconnecting from the last cursor when it ends."""

    def __init__(self, system: System, widget_id: str, token: str) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._url = f"{system.base_url}/webchat/{widget_id}/events"
        self._headers = {"Authorization": f"Bearer {token}", "Origin": SITE}
        self._stop = threading.Event()
        self.cursor: int | None = None
        self.connections = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            params = {} if self.cursor is None else {"after": self.cursor}
            with requests.get(self._url, params=params, headers=self._headers, stream=True, timeout=30) as answer:
                assert answer.status_code == 200, answer.text
                assert answer.headers["Access-Control-Allow-Origin"] == SITE
                self.connections += 1
                event: dict[str, str] = {}
                for line in answer.iter_lines(decode_unicode=True):
                    if self._stop.is_set():
                        return
                    if not line:
                        if "event" in event:
                            data = json.loads(event.get("data") or "{}")
                            if "id" in event:
                                self.cursor = int(event["id"])
                            self.events.put((event["event"], data))
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        event[name] = value

    def next(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got_kind, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got_kind == kind:
                return data

    def close(self) -> None:
        self._stop.set()


def _widget(system: System) -> tuple[str, str, str]:
    channel = {"type": "webchat", "external_number": "shop.example", "display_name": "Shop", "allowed_origins": [SITE]}
    tenant = system.provision_channel(channel, prompt_id="pmpt_site", credits=100)
    return tenant.user_id, tenant.api_key, tenant.phone_number_id


def _visitor(system: System, widget_id: str) -> str:
    answer = requests.post(
        f"{system.base_url}/webchat/{widget_id}/sessions", json={}, headers={"Origin": SITE}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def _send(system: System, widget_id: str, token: str, text: str) -> requests.Response:
    return requests.post(
        f"{system.base_url}/webchat/{widget_id}/messages",
        json={"text": text, "client_message_id": uuid.uuid4().hex},
        headers={"Authorization": f"Bearer {token}", "Origin": SITE},
        timeout=10,
    )


def test_a_reply_and_a_persons_reply_reach_the_open_widget_live_and_no_other_visitor(
    make_system: Callable[..., System], openai_standin: StandInOpenAI
) -> None:
    system = make_system(WEBCHAT_STREAM_SECONDS="4")
    system.start_web()
    system.start_workers()
    user_id, key, widget_id = _widget(system)
    token, stranger = _visitor(system, widget_id), _visitor(system, widget_id)
    stream = Stream(system, widget_id, token)
    try:
        assert _send(system, widget_id, token, "Do you have the blue one in size 9?").status_code == 202
        assert stream.next("message")["from"] == "visitor"
        stream.next("typing")
        reply = stream.next("message")
        assert (reply["from"], reply["author"]) == ("agent", "ai")
        assert "blue one in size 9" in reply["text"]  # the stand-in echoes what it was asked
        assert len(openai_standin.calls("responses")) == 1

        conversations = system.api("GET", f"/users/{user_id}/conversations", key, params={"phone_number_id": widget_id})
        conversation_id = conversations.json()["conversations"][0]["conversation_id"]
        assert system.api("PATCH", f"/users/{user_id}/conversations/{conversation_id}", key, json={"bot": "paused"}).ok
        time.sleep(5)  # the stream ends and the widget reconnects from its cursor in between
        person = system.api(
            "POST",
            f"/users/{user_id}/conversations/{conversation_id}/messages",
            key,
            json={"text": "Maria here: yes, size 9 is in stock."},
        )
        assert person.status_code == 201, person.text
        human = stream.next("message")
        assert (human["author"], human["text"]) == ("human", "Maria here: yes, size 9 is in stock.")
        assert stream.connections >= 2
    finally:
        stream.close()

    history = requests.get(
        f"{system.base_url}/webchat/{widget_id}/messages", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert [(m["from"], m["author"]) for m in history["messages"]] == [
        ("visitor", None),
        ("agent", "ai"),
        ("agent", "human"),
    ]
    theirs = requests.get(
        f"{system.base_url}/webchat/{widget_id}/messages", headers={"Authorization": f"Bearer {stranger}"}, timeout=10
    ).json()
    assert theirs["messages"] == []


def test_cross_site_rules_hold_behind_gunicorn(make_system: Callable[..., System]) -> None:
    system = make_system()
    system.start_web()
    _, _, widget_id = _widget(system)

    preflight = requests.options(
        f"{system.base_url}/webchat/{widget_id}/messages",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )
    refused = requests.post(
        f"{system.base_url}/webchat/{widget_id}/sessions",
        json={},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    script = requests.get(f"{system.base_url}/widget.js", timeout=10)

    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == SITE
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
