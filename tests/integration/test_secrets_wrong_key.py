"""A service started with keys that do not open the stored tokens: what the API and the webhook answer.

The channel's token never turns into garbage sent to Meta: reads fail with a logged TokenUndecryptable,
the webhook answers 500 so that Meta delivers again once the key is back, and nothing is half-stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import psycopg
import pytest
from flask.testing import FlaskClient

from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from domain.channels import ChannelType
from entrypoints.container import Container, build_container
from entrypoints.dev import whatsapp_text
from entrypoints.http.app import create_app
from entrypoints.http.signature import sign
from entrypoints.settings import Settings
from tests.support.secrets import OTHER_TOKEN_KEY, TEST_TOKEN_KEY

TOKEN = "EAAGwrongKeyTest0123456789abcdefWXYZ"
NUMBER = "106540352247777"


def _container(database_url: str, redis_url: str, keys: str) -> Container:
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": "wrong-key-secret",
            "WEBHOOK_VERIFY_TOKEN": "v",
            "ADMIN_API_KEY": "wrong-key-admin",
            "OFFLINE_RESPONDER": "true",
            "TOKEN_ENCRYPTION_KEYS": keys,
        }
    )
    container = build_container(settings)
    container.init_resources()
    return container


@pytest.fixture
def user_id(clean_database: str, redis_url: str) -> Iterator[str]:
    """A tenant with a WhatsApp channel and its agent, written under TEST_TOKEN_KEY (nothing cached)."""
    container = _container(clean_database, redis_url, TEST_TOKEN_KEY)
    user = container.create_user()(CreateUserCommand(email="wrong-key@example.com")).user
    container.add_channel()(AddChannelCommand(user.user_id, ChannelType.WHATSAPP, "+1555", TOKEN, NUMBER))
    container.create_agent()(CreateAgentCommand(user.user_id, "Agent", "pmpt_a", NUMBER))
    container.shutdown_resources()
    yield user.user_id


@pytest.fixture
def other_key(clean_database: str, redis_url: str) -> Iterator[FlaskClient]:
    container = _container(clean_database, redis_url, OTHER_TOKEN_KEY)
    yield create_app(container).test_client()
    container.shutdown_resources()


def test_reading_the_channel_is_a_logged_server_error_without_the_token(
    user_id: str, other_key: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        answer = other_key.get(f"/users/{user_id}/phone_numbers", headers={"x-api-key": "wrong-key-admin"})

    assert answer.status_code == 500
    assert answer.get_json()["error"]["code"] == "internal_error"
    assert TOKEN[:-4] not in answer.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled_error"]
    assert record.exc_info is not None
    assert f"channel {NUMBER}" in str(record.exc_info[1]) and "TOKEN_ENCRYPTION_KEYS" in str(record.exc_info[1])


def test_a_delivery_for_the_channel_is_answered_500_and_nothing_is_stored(
    user_id: str, other_key: FlaskClient, clean_database: str
) -> None:
    raw = json.dumps(whatsapp_text(NUMBER, "15550001", "Hello?")).encode()
    answer = other_key.post(
        "/webhook/meta",
        data=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, "wrong-key-secret")},
    )

    assert answer.status_code == 500  # Meta delivers it again later: with the key back, it is answered
    with psycopg.connect(clean_database) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert row is not None and row[0] == 0
