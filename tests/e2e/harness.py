"""The real system in processes: gunicorn serving the app, `mcagent worker` (RQ workers + sweeper),
a private redis-server the tests may restart, the machine's PostgreSQL, and the stand-ins."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from entrypoints.dev import whatsapp_delivery, whatsapp_text
from entrypoints.http.signature import sign
from tests.support.contract import Contract
from tests.support.processes import free_port, wait_for
from tests.support.secrets import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "e2e-webhook-secret"
ADMIN_KEY = "e2e-admin-key"


class PrivateRedis:
    """A redis-server of the test's own, so a test can kill and restart it (empty) without touching the machine's."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, what="redis-server to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def restart_empty(self) -> None:
        """What a crashed Redis without persistence comes back as: empty."""
        self.stop()
        self.start()


class ServiceProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def children(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


#: Lock and recovery timings shortened so that recovery takes seconds; `default_timings=True` keeps the
#: production defaults (entrypoints/settings.py) instead.
SHORT_TIMINGS = {"LOCK_TTL_MS": "2000", "RECOVERY_INTERVAL_MS": "300", "RECOVERY_AFTER_MS": "1500"}


class System:
    """Everything a test drives: the API over HTTP, signed webhooks, and handles on the processes."""

    def __init__(
        self,
        database_url: str,
        redis: PrivateRedis,
        openai_url: str,
        graph_url: str,
        log_dir: Path,
        *,
        default_timings: bool = False,
        **overrides: str,
    ) -> None:
        self.redis = redis
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "OPENAI_API_KEY": "sk-test",
            "DATABASE_POOL_SIZE": "3",
            "OPENAI_BASE_URL": openai_url,
            "OPENAI_TIMEOUT": "5000",
            "OPENAI_MAX_RETRIES": "3",
            "OPENAI_BACKOFF": "50",
            "WHATSAPP_API_BASE_URL": graph_url,
            "GRAPH_TIMEOUT": "3000",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WEBHOOK_VERIFY_TOKEN": "e2e-verify",
            "ADMIN_API_KEY": ADMIN_KEY,
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
            "WORKER_CONCURRENCY": "4",
            **({} if default_timings else SHORT_TIMINGS),
            "QUEUE_NAME": f"e2e-{uuid.uuid4().hex[:6]}",
            "LOG_LEVEL": "info",
            **overrides,
        }
        if default_timings:
            for name in SHORT_TIMINGS:
                self.env.pop(name, None)
        self.web: ServiceProcess | None = None
        self.workers: ServiceProcess | None = None
        self._contract: Contract | None = None

    def setting_ms(self, name: str, default_ms: int) -> int:
        return int(self.env.get(name, default_ms))

    @property
    def recovery_cycle_s(self) -> float:
        """Longest a stalled scope can wait before the sweep queues it again: its lock expires, its work
        counts as stalled, and the next sweep runs. Defaults as in entrypoints/settings.py."""
        return (
            self.setting_ms("LOCK_TTL_MS", 30_000)
            + self.setting_ms("RECOVERY_AFTER_MS", 30_000)
            + self.setting_ms("RECOVERY_INTERVAL_MS", 10_000)
        ) / 1000

    def start_web(self) -> None:
        self.web = ServiceProcess(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                "entrypoints.http.app:create_app()",
            ],
            self.env,
            self.log_dir,
        )
        wait_for(self._web_answers, timeout=30, what=f"gunicorn on {self.base_url} (log: {self.web.log_path})")

    def _web_answers(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/health", timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    def start_workers(self, concurrency: int | None = None) -> None:
        env = dict(self.env)
        if concurrency is not None:
            env["WORKER_CONCURRENCY"] = str(concurrency)
        self.workers = ServiceProcess("workers", [sys.executable, "-m", "entrypoints.cli", "worker"], env, self.log_dir)

    def stop(self) -> None:
        for process in (self.workers, self.web):
            if process is not None:
                process.stop()

    # --- the REST API ----------------------------------------------------------------------------

    def api(self, method: str, path: str, key: str = ADMIN_KEY, **kwargs: Any) -> requests.Response:
        answer = requests.request(method, f"{self.base_url}{path}", headers={"x-api-key": key}, timeout=10, **kwargs)
        return self.checked(answer)

    def checked(self, answer: requests.Response) -> requests.Response:
        """`answer`, after checking it against the document the running service serves."""
        if self._contract is None:
            served = requests.get(f"{self.base_url}/openapi.json", timeout=10)
            assert served.status_code == 200, served.text
            self._contract = Contract(served.json())
        request = answer.request
        path = (request.path_url or "/").split("?", 1)[0]
        status, content_type = answer.status_code, answer.headers.get("Content-Type")
        self._contract.check(request.method or "GET", path, status, content_type, answer.headers.keys(), answer.content)
        return answer

    def provision(self, *, phone_number_id: str, credits: int = 1000, prompt_version: str | None = None) -> Tenant:
        """A business with a WhatsApp number, an agent on it and credits."""
        channel = {
            "type": "whatsapp",
            "phone_number_id": phone_number_id,
            "external_number": "+15550000000",
            "access_token": f"token-{phone_number_id}",
            "display_name": "Shop",
        }
        return self.provision_channel(
            channel, prompt_id=f"pmpt_{phone_number_id}", credits=credits, prompt_version=prompt_version
        )

    def provision_channel(
        self, channel: dict[str, Any], *, prompt_id: str, credits: int = 1000, prompt_version: str | None = None
    ) -> Tenant:
        """A business with the channel `channel` describes (the body of POST …/phone_numbers), an agent on it
        and credits; the tenant's `phone_number_id` is the channel's (generated for web chat)."""
        created = self.api("POST", "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
        assert created.status_code == 201, created.text
        user_id = created.json()["user"]["user_id"]
        key = created.json()["api_key"]
        added = self.api("POST", f"/users/{user_id}/phone_numbers", key, json=channel)
        assert added.status_code == 201, added.text
        phone_number_id = added.json()["phone_number_id"]
        agent = self.api(
            "POST",
            f"/users/{user_id}/agents",
            key,
            json={
                "name": "Shop agent",
                "prompt_id": prompt_id,
                "phone_number_id": phone_number_id,
                **({"prompt_version": prompt_version} if prompt_version else {}),
            },
        )
        assert agent.status_code == 201, agent.text
        if credits:
            topped = self.api("POST", f"/users/{user_id}/credits", json={"amount": credits})
            assert topped.status_code == 201, topped.text
        return Tenant(user_id=user_id, api_key=key, phone_number_id=phone_number_id)

    def messages(self, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
        answer = self.api("GET", f"/users/{tenant.user_id}/messages", tenant.api_key, params={"limit": 100, **params})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["messages"]
        return found

    def credits(self, tenant: Tenant) -> dict[str, Any]:
        answer = self.api("GET", f"/users/{tenant.user_id}/credits", tenant.api_key)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def charges(self, tenant: Tenant) -> list[dict[str, Any]]:
        """The tenant's charge entries in the credit ledger, as the API shows them (newest first)."""
        return [entry for entry in self.credits(tenant)["ledger"] if entry["kind"] == "charge"]

    # --- the webhook -----------------------------------------------------------------------------

    def post_delivery(self, payload: dict[str, Any] | bytes, *, signature: str | None = None) -> requests.Response:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature if signature is not None else sign(raw, WEBHOOK_SECRET),
        }
        return self.checked(requests.post(f"{self.base_url}/webhook/meta", data=raw, headers=headers, timeout=10))

    def send_text(
        self, tenant: Tenant, customer: str, text: str, *, wamid: str | None = None, sent_at: float | None = None
    ) -> str:
        wamid = wamid or f"wamid.{uuid.uuid4().hex}"
        answer = self.post_delivery(text_delivery(tenant.phone_number_id, customer, text, wamid, sent_at))
        assert answer.status_code == 200, answer.text
        return wamid


class Tenant:
    def __init__(self, *, user_id: str, api_key: str, phone_number_id: str) -> None:
        self.user_id = user_id
        self.api_key = api_key
        self.phone_number_id = phone_number_id


def text_delivery(
    phone_number_id: str, customer: str, text: str, wamid: str, sent_at: float | None = None
) -> dict[str, Any]:
    at = datetime.fromtimestamp(sent_at, UTC) if sent_at is not None else None
    return whatsapp_text(phone_number_id, customer, text, wamid=wamid, sent_at=at)


def status_delivery(phone_number_id: str, wamid: str, status: str, customer: str) -> dict[str, Any]:
    report = {"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": customer}
    return whatsapp_delivery(phone_number_id, {"statuses": [report]})


@contextmanager
def running(system: System, *, workers: bool = True, concurrency: int | None = None) -> Iterator[System]:
    try:
        system.start_web()
        if workers:
            system.start_workers(concurrency)
        yield system
    finally:
        system.stop()
