from __future__ import annotations

import pytest

from domain.messages import OrderingScope
from entrypoints.settings import ConfigError, Settings

PRODUCTION = {
    "DATABASE_URL": "postgresql://db/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WEBHOOK_SECRET": "s",
    "WEBHOOK_VERIFY_TOKEN": "v",
    "ADMIN_API_KEY": "a",
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
    ):
        assert name in message, f"{name} not named in: {message}"


def test_dev_mode_runs_embedded_with_no_configuration_at_all() -> None:
    settings = Settings.from_env({}, dev=True)
    assert settings.embedded
    assert settings.openai_api_key is None
    assert settings.admin_api_key and settings.webhook_secret


def test_database_without_redis_is_refused_even_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match="set both"):
        Settings.from_env({"DATABASE_URL": "postgresql://db/app"}, dev=True)


def test_phone_number_ordering_scope_is_accepted_in_any_case() -> None:
    assert (
        Settings.from_env({**PRODUCTION, "ORDERING_SCOPE": "Phone_Number"}).ordering_scope is OrderingScope.PHONE_NUMBER
    )
