"""The start-up schema check: what the web and the workers do when PostgreSQL cannot say."""

from __future__ import annotations

import logging

import pytest

from adapters.postgres.migrations import DatabaseUnreachable, SchemaNotCurrent
from entrypoints.schema_check import refuse_unless_current_schema, wait_for_current_schema
from entrypoints.settings import Settings
from tests.support.processes import free_port
from tests.support.secrets import TEST_TOKEN_KEY

PRODUCTION = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WEBHOOK_SECRET": "s",
    "WEBHOOK_VERIFY_TOKEN": "v",
    "ADMIN_API_KEY": "a",
    "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
    "OPENAI_API_KEY": "sk-test",
}


class ScriptedVerify:
    """Answers each check with the next outcome: an exception to raise, or None for a current schema."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self._outcomes = list(outcomes)
        self.checked: list[str] = []

    def __call__(self, database_url: str) -> None:
        self.checked.append(database_url)
        outcome = self._outcomes.pop(0)
        if outcome is not None:
            raise outcome


def test_workers_wait_for_an_unreachable_database_with_a_doubling_delay_then_check_it() -> None:
    verify = ScriptedVerify(DatabaseUnreachable("refused"), DatabaseUnreachable("refused"), None)
    slept: list[float] = []

    wait_for_current_schema(Settings.from_env(PRODUCTION), verify=verify, sleep=slept.append, first_delay_s=1)

    assert slept == [1, 2]
    assert verify.checked == [PRODUCTION["DATABASE_URL"]] * 3


def test_workers_waiting_for_the_database_never_wait_longer_than_the_cap() -> None:
    verify = ScriptedVerify(*[DatabaseUnreachable("refused")] * 4, None)
    slept: list[float] = []

    wait_for_current_schema(
        Settings.from_env(PRODUCTION), verify=verify, sleep=slept.append, first_delay_s=1, max_delay_s=3
    )

    assert slept == [1, 2, 3, 3]


def test_workers_stop_at_once_on_a_database_not_at_this_releases_schema() -> None:
    verify = ScriptedVerify(SchemaNotCurrent("app", missing=["0001_initial"], unknown=[]))
    slept: list[float] = []

    with pytest.raises(SchemaNotCurrent, match="mcagent migrate"):
        wait_for_current_schema(Settings.from_env(PRODUCTION), verify=verify, sleep=slept.append)

    assert slept == []


def test_the_web_starts_when_the_database_cannot_be_reached_and_says_the_schema_was_not_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/app"

    with caplog.at_level(logging.WARNING):
        refuse_unless_current_schema(Settings.from_env({**PRODUCTION, "DATABASE_URL": unreachable}))

    assert [record.message for record in caplog.records] == ["schema_not_checked"]


def test_embedded_dev_mode_has_no_schema_to_check() -> None:
    verify = ScriptedVerify()

    wait_for_current_schema(Settings.from_env({}, dev=True), verify=verify)
    refuse_unless_current_schema(Settings.from_env({}, dev=True))

    assert verify.checked == []
