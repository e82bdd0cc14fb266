"""The commands a newcomer and an operator type: `mcagent dev`, `mcagent migrate`, bad configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import requests

from tests.e2e.harness import ROOT, free_port, wait_for


def _mcagent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _bare_env(**extra: str) -> dict[str, str]:
    names = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    return {**{name: os.environ[name] for name in names if name in os.environ}, **extra}


@contextmanager
def _dev_server() -> Iterator[str]:
    """`mcagent dev` on a free port, with nothing configured; its base URL while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "dev"],
        env=_bare_env(PORT=str(port)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_dev_mode_lets_a_person_chat_with_the_offline_responder_without_any_account() -> None:
    with _dev_server() as base:
        wait_for(lambda: _answers(f"{base}/health"), timeout=30, what="mcagent dev")
        assert "Dev chat" in requests.get(f"{base}/dev", timeout=5).text
        sent = requests.post(f"{base}/dev/send", json={"customer": "15557654321", "text": "Hello shop"}, timeout=5)
        assert sent.status_code == 200, sent.text

        def replied() -> bool:
            return any(
                m["direction"] == "outbound" for m in requests.get(f"{base}/dev/messages", timeout=5).json()["messages"]
            )

        wait_for(replied, timeout=15, what="the offline reply")
        chat = requests.get(f"{base}/dev/messages", timeout=5).json()
        assert chat["ai"] == "offline"
        reply = next(m for m in chat["messages"] if m["direction"] == "outbound")
        assert "offline" in reply["text"].lower() and "Hello shop" in reply["text"]
        assert reply["status"] == "sent"
        # The same process serves the REST API with the dev admin key.
        created = requests.post(
            f"{base}/users", json={"email": "newcomer@example.com"}, headers={"x-api-key": "dev-admin-key"}, timeout=5
        )
        assert created.status_code == 201


def test_dev_mode_has_one_channel_of_each_type_and_each_one_answers() -> None:
    with _dev_server() as base:
        wait_for(lambda: _answers(f"{base}/health"), timeout=30, what="mcagent dev")
        page = requests.get(f"{base}/dev", timeout=5).text
        [widget_id] = re.findall(r'data-widget-id="(wc_[0-9a-f]+)"', page)[:1]
        assert page.count(f'data-widget-id="{widget_id}"') >= 1 and "{{WIDGET_ID}}" not in page

        sent = requests.post(
            f"{base}/dev/send",
            json={"channel": "instagram", "customer": "IGSID42", "text": "Hi on Instagram"},
            timeout=5,
        )
        assert sent.status_code == 200, sent.text

        def instagram_replied() -> bool:
            chat = requests.get(f"{base}/dev/messages", params={"channel": "instagram"}, timeout=5).json()
            return any(m["direction"] == "outbound" and m["status"] == "sent" for m in chat["messages"])

        wait_for(instagram_replied, timeout=15, what="the Instagram reply")
        whatsapp = requests.get(f"{base}/dev/messages", params={"channel": "whatsapp"}, timeout=5).json()
        assert whatsapp["messages"] == []  # the Instagram conversation is not shown on the WhatsApp tab

        assert requests.get(f"{base}/widget.js", timeout=5).status_code == 200
        token = requests.post(f"{base}/webchat/{widget_id}/sessions", json={}, timeout=5).json()["token"]
        visitor = {"Authorization": f"Bearer {token}"}
        message = {"text": "Hi from the site", "client_message_id": "dev-mode-test-0001"}
        assert requests.post(f"{base}/webchat/{widget_id}/messages", json=message, headers=visitor, timeout=5).ok

        def widget_replied() -> list[dict[str, str]]:
            answer = requests.get(f"{base}/webchat/{widget_id}/messages", headers=visitor, timeout=5).json()
            return [m for m in answer["messages"] if m["from"] == "agent"]

        wait_for(lambda: bool(widget_replied()), timeout=15, what="the web chat reply")
        assert "Hi from the site" in widget_replied()[0]["text"]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def test_migrate_applies_the_schema_once_and_is_safe_to_run_again(database_url: str) -> None:
    fresh = database_url.rsplit("/", 1)[0] + f"/mcagent_cli_{os.getpid()}_{int(time.time())}"
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh.rsplit("/", 1)[1]}"')
    try:
        first = _mcagent("migrate", env=_bare_env(DATABASE_URL=fresh))
        assert first.returncode == 0, first.stderr
        assert "0001_initial" in first.stdout
        second = _mcagent("migrate", env=_bare_env(DATABASE_URL=fresh))
        assert second.returncode == 0, second.stderr
        assert "up to date" in second.stdout
        with psycopg.connect(fresh) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions and versions[0].startswith("0001")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_a_misconfigured_worker_stops_with_one_message_naming_every_bad_variable() -> None:
    answer = _mcagent("worker", env=_bare_env(REDIS_URL="nope", OPENAI_MAX_RETRIES="many"))
    assert answer.returncode == 2
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_MAX_RETRIES", "WEBHOOK_SECRET", "ADMIN_API_KEY"):
        assert name in answer.stderr
    assert "Traceback" not in answer.stderr
