"""A channel's access token at rest, on the real system: gunicorn, `mcagent worker`, PostgreSQL, Redis.

The token is really used (the stand-in Graph API receives it), and then looked for everywhere else a
person could find it — every row of every table, every key of Redis, the logs of the web and worker
processes, every API answer — and found nowhere in clear, only as its masked tail where the API
shows one.
"""

from __future__ import annotations

import contextlib
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis
import requests
from psycopg import sql

from adapters.crypto import PREFIX
from tests.e2e.harness import ADMIN_KEY, System, Tenant, wait_for
from tests.support.standin_graph import GraphFailure, StandInGraph

pytestmark = pytest.mark.timeout(180)

PHONE_NUMBER_ID = "106540352240001"
CUSTOMER = "15550009999"


def _token() -> str:
    """Long and unlike anything else the system holds, so that finding a part of it means a leak."""
    return f"EAAGatRest{uuid.uuid4().hex}{uuid.uuid4().hex}Zq9T"


def _every_row_as_text(database_url: str) -> dict[str, str]:
    """Every row of every table, each rendered whole as PostgreSQL's text form of the row."""
    with psycopg.connect(database_url) as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {
            table: "\n".join(
                row[0]
                for row in conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))).fetchall()
            )
            for table in tables
        }


def _text_and_json_columns(database_url: str) -> list[str]:
    """Every value of every text, varchar and json(b) column of every table, one by one."""
    values: list[str] = []
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'jsonb', 'json')"
        ).fetchall()
        for table, column in columns:
            query = sql.SQL("SELECT {}::text FROM {}").format(sql.Identifier(column), sql.Identifier(table))
            values.extend(row[0] for row in conn.execute(query).fetchall() if row[0] is not None)
    return values


def _every_redis_value(client: redis.Redis) -> dict[bytes, list[bytes]]:
    """Every key of the service's Redis with what it holds, read by type and dumped, and inflated where
    it was compressed (RQ keeps job data zlib-compressed)."""
    found: dict[bytes, list[bytes]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                values.extend((field, value))
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            values.extend(client.smembers(key))
        elif kind == "zset":
            values.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            for _, entry in client.xrange(key):
                for field, value in entry.items():
                    values.extend((field, value))
        values.append(client.dump(key) or b"")
        for value in list(values):
            with contextlib.suppress(zlib.error):
                values.append(zlib.decompress(value))
        found[key] = values
    return found


def test_a_channel_token_is_used_to_answer_and_is_found_nowhere_in_clear(
    make_system: Callable[..., System], graph_standin: StandInGraph
) -> None:
    token = _token()
    secret = token[:-4]  # everything but the tail the API may show
    system = make_system(LOG_LEVEL="debug")
    system.start_web()
    system.start_workers()
    answers: list[requests.Response] = []

    def api(method: str, path: str, key: str = ADMIN_KEY, **kwargs: Any) -> requests.Response:
        answer = system.api(method, path, key, **kwargs)
        answers.append(answer)
        return answer

    created = api("POST", "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
    user_id, key = created.json()["user"]["user_id"], created.json()["api_key"]
    channel = {
        "type": "whatsapp",
        "phone_number_id": PHONE_NUMBER_ID,
        "external_number": "+15550000000",
        "access_token": token,
        "display_name": "Shop",
    }
    # Refused requests that carry the token: their error bodies must not echo it.
    assert api("POST", f"/users/{user_id}/phone_numbers", key, json={**channel, "type": "fax"}).status_code == 422
    assert (
        api("POST", f"/users/{user_id}/phone_numbers", key, json={**channel, "external_number": 7}).status_code == 422
    )
    added = api("POST", f"/users/{user_id}/phone_numbers", key, json=channel)
    assert added.status_code == 201, added.text
    assert added.json()["access_token"] == "…" + token[-4:]
    assert api("POST", f"/users/{user_id}/phone_numbers", key, json=channel).status_code == 409
    agent = {"name": "Shop agent", "prompt_id": "pmpt_secrets", "phone_number_id": PHONE_NUMBER_ID}
    assert api("POST", f"/users/{user_id}/agents", key, json=agent).status_code == 201
    assert api("POST", f"/users/{user_id}/credits", json={"amount": 10}).status_code == 201
    listed = api("GET", f"/users/{user_id}/phone_numbers", key)
    assert [c["access_token"] for c in listed.json()["phone_numbers"]] == ["…" + token[-4:]]

    # The token is really used: the Graph API receives it, and nothing else does.
    tenant = Tenant(user_id=user_id, api_key=key, phone_number_id=PHONE_NUMBER_ID)
    system.send_text(tenant, CUSTOMER, "Do you have this in blue?")
    sent = graph_standin.wait_for_sent(1, timeout=20)
    assert sent[0].authorization == f"Bearer {token}"

    # A Graph API error that echoes the token back (a proxy's, a malformed one): it is stored, logged
    # and shown as the failure reason of the reply, without the token.
    echo = GraphFailure(400, 131000, f"(#131000) Invalid token {token}", f"Bearer {token} was refused")
    graph_standin.fail_next(echo, echo)
    system.send_text(tenant, CUSTOMER, "Hello?")

    def reply_failed() -> bool:
        messages = api("GET", f"/users/{user_id}/messages", key, params={"limit": 100}).json()["messages"]
        return any(m["direction"] == "outbound" and m["status"] == "failed" for m in messages)

    wait_for(reply_failed, timeout=20, what="the second reply to fail")
    messages = answers[-1].json()["messages"]
    failed = next(m for m in messages if m["status"] == "failed")
    assert "Invalid token" in failed["failure_reason"] and secret not in failed["failure_reason"]
    system.stop()

    # PostgreSQL: the channel's row holds ciphertext; no row of any table holds the token.
    with psycopg.connect(system.env["DATABASE_URL"]) as conn:
        [stored] = conn.execute("SELECT access_token FROM phone_numbers").fetchall()
    assert stored[0].startswith(PREFIX)
    rows = _every_row_as_text(system.env["DATABASE_URL"])
    assert rows["phone_numbers"] and rows["messages"], "the tables that were searched hold the test's rows"
    assert [table for table, text in rows.items() if secret in text] == []
    assert [value for value in _text_and_json_columns(system.env["DATABASE_URL"]) if secret in value] == []

    # Redis: the cached route holds the ciphertext only; no key holds the token.
    client = redis.Redis.from_url(system.redis.url)
    everything = _every_redis_value(client)
    client.close()
    route_key = f"mcagent:route:{PHONE_NUMBER_ID}".encode()
    assert route_key in everything and f'"access_token": "{PREFIX}'.encode() in everything[route_key][0]
    assert [k for k, values in everything.items() if any(secret.encode() in value for value in values)] == []

    # The logs of the web and worker processes, which did log the failure.
    assert system.web is not None and system.workers is not None
    logs = system.web.log() + system.workers.log()
    assert "delivery_failed" in logs and "Invalid token" in logs
    assert secret not in logs

    # Every API answer, error bodies included.
    assert [a.request.url for a in answers if secret in a.text] == []
