"""The processes a benchmark run starts, and their clean stop: database, redis, stand-ins, gunicorn, workers."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support.processes import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the benchmark dies, even by SIGKILL (Linux prctl)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Service:
    """One started process (its own session, so Ctrl-C reaches only the benchmark, which stops it in order)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(sig)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (children of a supervisor that did not stop in time): SIGKILL.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Database:
    """A fresh database on the machine's PostgreSQL, migrated; dropped by `drop`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"mcagent_bench_{uuid.uuid4().hex[:10]}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"

    def create(self) -> None:
        from adapters.postgres.migrations import apply_migrations

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        apply_migrations(self.url)

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def query(self, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one statement; without `params` a `%` in it is a plain character (LIKE patterns)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(statement.encode(), params).fetchall())


def _start_listening(name: str, argv: list[str], log_dir: Path, port: int, timeout: float) -> tuple[Service, int]:
    service = Service(name, argv, dict(os.environ), log_dir)
    wait_for(lambda: port_answers(port), timeout=timeout, what=name)
    return service, port


def start_redis(log_dir: Path, port: int | None = None) -> tuple[Service, int]:
    """A private, empty redis-server without persistence; on `port` to come back where a killed one was."""
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return _start_listening("redis", argv, log_dir, port, 10)


def start_openai(log_dir: Path, latency_ms: int) -> tuple[Service, int]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.standin_openai", "--port", str(port), "--latency-ms", str(latency_ms)]
    return _start_listening("standin-openai", argv, log_dir, port, 20)


def start_graph(log_dir: Path, out: Path) -> tuple[Service, int]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.graph_recorder", "--port", str(port), "--out", str(out)]
    return _start_listening("standin-graph", argv, log_dir, port, 20)


def gunicorn_argv(port: int, *, workers: int, threads: int, worker_class: str, keepalive: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--keep-alive",
        str(keepalive),
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
        "entrypoints.http.app:create_app()",
    ]


def worker_argv() -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", "worker"]


def seed_literal_worker_argv() -> list[str]:
    """The seed's worker design: RQ's fork-per-job workers (see `bench/seed_literal_worker.py`)."""
    return [sys.executable, "-m", "bench.seed_literal_worker"]
