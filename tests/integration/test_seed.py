"""`mcagent seed` against a real database: what it made is what the API lists, and it runs once only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.seed import HUMAN_REPLY, REPLIES, TENANTS
from entrypoints.settings import Settings
from tests.e2e.harness import ROOT
from tests.support.secrets import TEST_TOKEN_KEY

_TENANT_LINE = re.compile(r"^\s+(.+?)\s+(usr_\w+)\s+API key: (\S+)$", re.M)


def _seed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "seed"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(clean_database: str, redis_url: str) -> dict[str, str]:
    names = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    return {
        **{name: os.environ[name] for name in names if name in os.environ},
        "DATABASE_URL": clean_database,
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
    }


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[FlaskClient]:
    container = build_container(Settings.from_env(env, dev=True))
    container.init_resources()
    yield create_app(container).test_client()
    container.shutdown_resources()


def _get(client: FlaskClient, path: str, key: str) -> Any:
    answer = client.get(path, headers={"x-api-key": key})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_the_seeded_demo_is_what_the_api_lists_and_a_second_run_changes_nothing(
    env: dict[str, str], client: FlaskClient
) -> None:
    first = _seed(env)
    assert first.returncode == 0, first.stderr
    printed = _TENANT_LINE.findall(first.stdout)
    assert [name for name, _, _ in printed] == [tenant.company_name for tenant in TENANTS]

    all_types: set[str] = set()
    for (_, user_id, key), tenant in zip(printed, TENANTS, strict=True):
        channels = _get(client, f"/users/{user_id}/phone_numbers", key)["phone_numbers"]
        assert len(channels) == len(tenant.channels)
        all_types |= {channel["type"] for channel in channels}
        agents = _get(client, f"/users/{user_id}/agents", key)["agents"]
        linked = [agent["phone_number_id"] for agent in agents if agent["phone_number_id"] is not None]
        assert sorted(linked) == sorted(c["phone_number_id"] for c in channels)

        messages = _get(client, f"/users/{user_id}/messages?limit=100", key)["messages"]
        said = [text for *_, texts in tenant.chats for text in texts]
        inbound = [m for m in messages if m["direction"] == "inbound"]
        outbound = [m for m in messages if m["direction"] == "outbound"]
        assert sorted(m["text"] for m in inbound) == sorted(said)
        assert sorted(m["text"] for m in outbound if m["sender"] == "ai") == sorted(REPLIES[text] for text in said)
        assert {m["status"] for m in outbound} == {"sent"}

        credits = _get(client, f"/users/{user_id}/credits", key)
        topped_up = sum(amount for amount, _ in tenant.top_ups)
        assert credits["balance"] == topped_up - len(said)  # one credit per answered message
        assert [entry["kind"] for entry in credits["ledger"]].count("top_up") == len(tenant.top_ups)
    assert all_types == {"whatsapp", "instagram", "webchat"}
    _an_archived_relink_and_a_paused_conversation(client, printed)

    second = _seed(env)
    assert second.returncode == 1
    assert "seeded already" in second.stderr and "nothing was changed" in second.stderr
    (_, user_id, key) = printed[0]
    again = _get(client, f"/users/{user_id}/messages?limit=100", key)["messages"]
    assert len(again) == 2 * sum(len(texts) for *_, texts in TENANTS[0].chats)


def _an_archived_relink_and_a_paused_conversation(client: FlaskClient, printed: list[tuple[str, str, str]]) -> None:
    """The first business moved its WhatsApp number to a new agent: its conversations there are archived,
    the old agent is kept unlinked. At the second a person took a conversation over: paused, their reply
    sent as `sender: human`."""
    (_, user_id, key), whatsapp = printed[0], TENANTS[0].channels[0].phone_number_id
    agents = {agent["name"]: agent for agent in _get(client, f"/users/{user_id}/agents", key)["agents"]}
    assert agents["Sales (spring)"]["phone_number_id"] == whatsapp
    assert agents["Sales"]["phone_number_id"] is None
    archived = _get(client, f"/users/{user_id}/conversations?state=archived", key)["conversations"]
    chats_there = {customer for channel, customer, *_ in TENANTS[0].chats if channel == whatsapp}
    assert {c["customer_id"] for c in archived} == chats_there
    assert {c["agent_id"] for c in archived} == {agents["Sales"]["agent_id"]}
    assert not _get(client, f"/users/{user_id}/conversations?phone_number_id={whatsapp}&state=active", key)[
        "conversations"
    ]

    (_, user_id, key) = printed[1]
    [paused] = [
        c for c in _get(client, f"/users/{user_id}/conversations", key)["conversations"] if c["bot"] == "paused"
    ]
    assert paused["is_active"] and paused["bot_paused_until"] is None
    conversation = _get(client, f"/users/{user_id}/conversations/{paused['conversation_id']}", key)
    assert conversation["bot"] == "paused"
    messages = _get(client, f"/users/{user_id}/messages?conversation_id={paused['conversation_id']}", key)
    human = [m for m in messages["messages"] if m["sender"] == "human"]
    assert [(m["text"], m["status"], m["direction"]) for m in human] == [(HUMAN_REPLY, "sent", "outbound")]


def test_seed_needs_a_database(env: dict[str, str]) -> None:
    bare = {name: value for name, value in env.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    refused = _seed(bare)
    assert refused.returncode == 2
    assert "DATABASE_URL" in refused.stderr
