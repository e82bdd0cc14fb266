from __future__ import annotations

import pytest

from domain.messages import OrderingScope
from entrypoints.settings import ConfigError, Settings
from tests.support.secrets import TEST_TOKEN_KEY

PRODUCTION = {
    "DATABASE_URL": "postgresql://db/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WEBHOOK_SECRET": "s",
    "WEBHOOK_VERIFY_TOKEN": "v",
    "ADMIN_API_KEY": "a",
    "OPENAI_API_KEY": "sk-test",
    "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
}


def test_production_settings_read_the_seed_names_with_their_defaults() -> None:
    settings = Settings.from_env(PRODUCTION)
    assert settings.database_url == "postgresql://db/app"
    assert settings.webhook_path == "/webhook/meta"
    assert settings.api_key_header == "x-api-key"
    assert settings.openai_timeout_ms == 30_000
    assert settings.openai_max_retries == 3
    assert settings.ordering_scope is OrderingScope.CONVERSATION
    assert not settings.embedded
    assert not settings.offline_responder


def test_every_bad_variable_is_named_in_one_error() -> None:
    env = {
        "REDIS_URL": "http://not-redis",
        "OPENAI_TIMEOUT": "soon",
        "WORKER_CONCURRENCY": "0",
        "ORDERING_SCOPE": "galaxy",
        "WEBHOOK_PATH": "webhook",
        "LOG_FORMAT": "xml",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "OPENAI_TIMEOUT",
        "WORKER_CONCURRENCY",
        "ORDERING_SCOPE",
        "WEBHOOK_PATH",
        "LOG_FORMAT",
        "WEBHOOK_SECRET",
        "ADMIN_API_KEY",
        "WEBHOOK_VERIFY_TOKEN",
        "OPENAI_API_KEY",
    ):
        assert name in message, f"{name} not named in: {message}"


def test_dev_mode_runs_embedded_with_no_configuration_at_all() -> None:
    settings = Settings.from_env({}, dev=True)
    assert settings.embedded
    assert settings.openai_api_key is None
    assert settings.offline_responder
    assert settings.admin_api_key and settings.webhook_secret


def test_dev_mode_with_an_openai_key_answers_with_openai() -> None:
    assert not Settings.from_env({"OPENAI_API_KEY": "sk-dev"}, dev=True).offline_responder


def test_outside_dev_mode_a_missing_openai_key_is_refused_naming_the_key_and_the_opt_in() -> None:
    without_key = {name: value for name, value in PRODUCTION.items() if name != "OPENAI_API_KEY"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(without_key)
    assert caught.value.problems == [
        "OPENAI_API_KEY: required (sk-…); to answer customers with the labelled offline responder instead, "
        "set OFFLINE_RESPONDER=true"
    ]


def test_outside_dev_mode_the_offline_responder_answers_only_when_asked_for() -> None:
    without_key = {name: value for name, value in PRODUCTION.items() if name != "OPENAI_API_KEY"}
    settings = Settings.from_env({**without_key, "OFFLINE_RESPONDER": "true"})
    assert settings.offline_responder
    assert settings.openai_api_key is None


def test_offline_responder_with_an_openai_key_is_refused_as_ambiguous() -> None:
    with pytest.raises(ConfigError, match="OFFLINE_RESPONDER: true, but OPENAI_API_KEY is set too"):
        Settings.from_env({**PRODUCTION, "OFFLINE_RESPONDER": "true"})


def test_dev_mode_can_refuse_the_offline_responder_too() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY: required"):
        Settings.from_env({"OFFLINE_RESPONDER": "false"}, dev=True)


def test_database_without_redis_is_refused_even_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match="set both"):
        Settings.from_env({"DATABASE_URL": "postgresql://db/app"}, dev=True)


def test_phone_number_ordering_scope_is_accepted_in_any_case() -> None:
    assert (
        Settings.from_env({**PRODUCTION, "ORDERING_SCOPE": "Phone_Number"}).ordering_scope is OrderingScope.PHONE_NUMBER
    )
