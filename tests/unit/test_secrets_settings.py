"""TOKEN_ENCRYPTION_KEYS at start-up: required with a database, checked, never printed."""

from __future__ import annotations

import pytest

from adapters.crypto import FernetTokenCipher
from entrypoints.container import build_container
from entrypoints.settings import ConfigError, Settings
from tests.support.secrets import OTHER_TOKEN_KEY, TEST_TOKEN_KEY

PRODUCTION = {
    "DATABASE_URL": "postgresql://db/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WEBHOOK_SECRET": "s",
    "WEBHOOK_VERIFY_TOKEN": "v",
    "ADMIN_API_KEY": "a",
    "OPENAI_API_KEY": "sk-test",
}


def _problems(env: dict[str, str], *, dev: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env, dev=dev)
    return refused.value.problems


def test_production_without_keys_stops_naming_the_variable_and_how_to_make_a_key() -> None:
    problems = _problems(PRODUCTION)

    assert len(problems) == 1
    assert problems[0].startswith("TOKEN_ENCRYPTION_KEYS: required wherever DATABASE_URL is set")
    assert "Fernet.generate_key()" in problems[0]


def test_dev_mode_on_a_database_needs_keys_too() -> None:
    env = {name: PRODUCTION[name] for name in ("DATABASE_URL", "REDIS_URL")}

    assert [p for p in _problems(env, dev=True) if p.startswith("TOKEN_ENCRYPTION_KEYS")]


def test_embedded_dev_mode_makes_up_a_key_of_the_moment() -> None:
    first = Settings.from_env({}, dev=True).token_encryption_keys
    second = Settings.from_env({}, dev=True).token_encryption_keys

    assert len(first) == 1 and first != second
    FernetTokenCipher(first)


def test_keys_are_read_in_order_with_spaces_around_them_ignored() -> None:
    settings = Settings.from_env({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": f" {OTHER_TOKEN_KEY} , {TEST_TOKEN_KEY}"})

    assert settings.token_encryption_keys == (OTHER_TOKEN_KEY, TEST_TOKEN_KEY)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not-a-key-but-a-secret-value-of-some-length", "key 1 of 1 is not a Fernet key"),
        (f"{TEST_TOKEN_KEY},{TEST_TOKEN_KEY[:-3]}", "key 2 of 2 is not a Fernet key"),
        (f"{TEST_TOKEN_KEY},,{OTHER_TOKEN_KEY}", "key 2 of 3 is empty"),
    ],
)
def test_a_bad_key_stops_start_up_naming_its_position_and_never_showing_a_key(value: str, expected: str) -> None:
    problems = _problems({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": value})

    assert len(problems) == 1
    assert problems[0].startswith(f"TOKEN_ENCRYPTION_KEYS: {expected}")
    for key in value.split(","):
        assert not key or key not in problems[0]


def test_the_settings_never_show_their_keys() -> None:
    settings = Settings.from_env({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY})

    assert TEST_TOKEN_KEY not in repr(settings)


def test_the_container_encrypts_with_the_first_key_and_decrypts_with_all() -> None:
    older = build_container(Settings.from_env({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY}))
    rotated = build_container(
        Settings.from_env({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": f"{OTHER_TOKEN_KEY},{TEST_TOKEN_KEY}"})
    )
    stored = older.token_cipher().encrypt("EAAG-token")

    assert rotated.token_cipher().decrypt(stored) == "EAAG-token"
    assert FernetTokenCipher([OTHER_TOKEN_KEY]).decrypt(rotated.token_cipher().encrypt("EAAG-token")) == "EAAG-token"
