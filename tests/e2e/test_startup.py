"""Start-up on a database that is not at this release's schema: every process stops at once and says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from adapters.postgres.migrations import apply_migrations
from tests.e2e.harness import ADMIN_KEY, ROOT, WEBHOOK_SECRET, free_port
from tests.support.secrets import TEST_TOKEN_KEY

#: "At once": about a second here, mostly importing the app; the margin is for a busy machine.
EXITS_WITHIN_S = 10.0


@pytest.fixture
def new_database(database_url: str) -> Iterator[str]:
    """An empty database of its own, as `CREATE DATABASE` leaves it; dropped afterwards."""
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    name = f"mcagent_startup_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        # Nothing listens there: a process that got past the check would not get far either.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "OPENAI_API_KEY": "sk-test",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_VERIFY_TOKEN": "e2e-verify",
        "ADMIN_API_KEY": ADMIN_KEY,
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        "LOG_LEVEL": "info",
    }


def _run_until_exit(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Start the process and wait for it to exit by itself: (exit code, output); fail if it does not."""
    process = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=EXITS_WITHIN_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{argv} still running after {EXITS_WITHIN_S} s:\n{output[-4000:]}")
    return process.returncode, output


def _gunicorn() -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--bind",
        f"127.0.0.1:{free_port()}",
        "entrypoints.http.app:create_app()",
    ]


def _mcagent(command: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", command]


def test_gunicorn_on_an_unmigrated_database_fails_to_boot_and_says_to_run_mcagent_migrate(new_database: str) -> None:
    code, output = _run_until_exit(_gunicorn(), _env(new_database))

    assert code != 0
    assert "is not at this release's schema" in output
    assert "Run `mcagent migrate`" in output
    assert "Worker failed to boot" in output


def test_the_worker_on_an_unmigrated_database_exits_with_code_2_before_starting_any_process(
    new_database: str,
) -> None:
    code, output = _run_until_exit(_mcagent("worker"), _env(new_database))

    assert code == 2
    assert "Run `mcagent migrate`" in output
    assert "Traceback" not in output
    assert "supervisor_started" not in output
    assert "sweep_failed" not in output


def test_the_worker_on_a_database_a_newer_release_migrated_says_to_deploy_that_release(new_database: str) -> None:
    apply_migrations(new_database)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('9999_from_a_newer_release')")

    code, output = _run_until_exit(_mcagent("worker"), _env(new_database))

    assert code == 2
    assert "9999_from_a_newer_release" in output
    assert "Deploy the release that migrated it" in output


def test_serve_on_an_unmigrated_database_exits_with_code_2_and_the_same_message(new_database: str) -> None:
    code, output = _run_until_exit(_mcagent("serve"), {**_env(new_database), "PORT": str(free_port())})

    assert code == 2
    assert "Run `mcagent migrate`" in output
    assert "Traceback" not in output
