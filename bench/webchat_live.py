"""How a reply reaches an open web chat widget: server-sent events against long polling, behind gunicorn.

    python -m bench.webchat_live [--visitors 10] [--duration 30] [--idle 20] [--out FILE]

One system (a fresh database, a private Redis, the stand-in OpenAI at `--ai-latency-ms`, gunicorn with the
production section's worker class, `mcagent worker`) and one web chat widget. For each way of listening, in
turn, `--visitors` visitors each keep one listener open — an event stream (`GET …/events`, reconnecting from
its cursor as the widget does) or a long-poll loop (`GET …/messages?after=&wait=25`) — and send a message
every `--every` seconds for `--duration` seconds. Measured per way:

- **delivery**: from the visitor's POST to the agent's reply arriving at its listener, minus the AI's latency
  (what the service adds: the turn, the signal over Redis, the listener's read), p50 / p95 / max;
- **web CPU per reply**: gunicorn's processes' CPU during the window, divided by the replies seen;
- **idle web CPU**: then `--idle` seconds with every listener open and nothing said, in CPU ms per open
  listener per minute (what an open widget costs while its visitor reads);
- requests made per reply (one per stream or poll answer), and replies lost (never seen).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from bench.procstats import CLK_TCK, all_stats, descendants
from bench.system import Database, Service, gunicorn_argv, start_openai, start_redis, worker_argv
from tests.support.processes import free_port, wait_for
from tests.support.secrets import TEST_TOKEN_KEY

ADMIN_KEY = "bench-admin"
ORIGIN = "https://shop.example"


class Visitor:
    """One browser: a session, a listener (SSE or long polling) and the replies it saw, with their times."""

    def __init__(self, base: str, widget_id: str, mode: str) -> None:
        self.base, self.widget_id, self.mode = base, widget_id, mode
        session = requests.post(f"{base}/webchat/{widget_id}/sessions", json={}, headers={"Origin": ORIGIN}, timeout=10)
        session.raise_for_status()
        self.headers = {"Authorization": f"Bearer {session.json()['token']}", "Origin": ORIGIN}
        self.sent: dict[str, float] = {}  # text -> time sent
        self.seen: dict[str, float] = {}  # text of the message answered -> time its reply arrived
        self.requests = 0
        self.cursor: int | None = None
        self._shown: set[str] = set()
        self._stop = threading.Event()
        self._http = requests.Session()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def send(self, text: str) -> None:
        self.sent[text] = time.monotonic()
        answer = self._http.post(
            f"{self.base}/webchat/{self.widget_id}/messages",
            json={"text": text, "client_message_id": uuid.uuid4().hex},
            headers=self.headers,
            timeout=10,
        )
        answer.raise_for_status()

    def _saw(self, message: dict[str, Any]) -> None:
        if message["id"] in self._shown:
            return
        self._shown.add(message["id"])
        if message["from"] == "agent":
            asked = message["text"].removeprefix("echo: ")
            self.seen.setdefault(asked, time.monotonic())

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen_once()
            except requests.RequestException:
                time.sleep(0.2)

    def _listen_once(self) -> None:
        params: dict[str, Any] = {} if self.cursor is None else {"after": self.cursor}
        self.requests += 1
        if self.mode == "longpoll":
            answer = self._http.get(
                f"{self.base}/webchat/{self.widget_id}/messages",
                params={**params, "wait": 25},
                headers=self.headers,
                timeout=40,
            )
            answer.raise_for_status()
            body = answer.json()
            for message in body["messages"]:
                self._saw(message)
            self.cursor = body["cursor"]
            return
        with self._http.get(
            f"{self.base}/webchat/{self.widget_id}/events", params=params, headers=self.headers, stream=True, timeout=40
        ) as answer:
            answer.raise_for_status()
            event: dict[str, str] = {}
            for line in answer.iter_lines(chunk_size=None, decode_unicode=True):
                if self._stop.is_set():
                    return
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        event[name] = value
                    continue
                if event.get("event") == "message":
                    self._saw(json.loads(event["data"]))
                if "id" in event:
                    self.cursor = int(event["id"])
                event = {}


def _web_ticks(root: int) -> int:
    stats = all_stats()
    return sum(stats[pid].own_ticks for pid in descendants([root], stats) if pid in stats)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def measure(mode: str, base: str, widget_id: str, web_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    visitors = [Visitor(base, widget_id, mode) for _ in range(args.visitors)]
    for visitor in visitors:
        visitor.start()
    time.sleep(2)  # every listener open
    ticks, started = _web_ticks(web_pid), time.monotonic()
    requests_before = sum(v.requests for v in visitors)
    round_ = 0
    while time.monotonic() - started < args.duration:
        for index, visitor in enumerate(visitors):
            threading.Thread(target=visitor.send, args=(f"{mode} v{index} r{round_}",), daemon=True).start()
        round_ += 1
        time.sleep(args.every)
    wait_for(lambda: all(len(v.seen) >= len(v.sent) for v in visitors), timeout=60, what="every reply seen")
    busy_s = time.monotonic() - started
    busy_ticks = _web_ticks(web_pid) - ticks
    busy_requests = sum(v.requests for v in visitors) - requests_before

    idle_ticks, idle_started = _web_ticks(web_pid), time.monotonic()
    idle_requests = sum(v.requests for v in visitors)
    time.sleep(args.idle)
    idle_cpu_ms = (_web_ticks(web_pid) - idle_ticks) * 1000 / CLK_TCK
    idle_minutes = (time.monotonic() - idle_started) / 60
    idle_requests = sum(v.requests for v in visitors) - idle_requests
    for visitor in visitors:
        visitor.stop()

    delays = [
        (v.seen[text] - v.sent[text]) * 1000 - args.ai_latency_ms for v in visitors for text in v.sent if text in v.seen
    ]
    replies = len(delays)
    return {
        "mode": mode,
        "visitors": args.visitors,
        "replies": replies,
        "lost": sum(len(v.sent) for v in visitors) - replies,
        "busy_s": round(busy_s, 1),
        "delivery_overhead_ms": {
            "p50": round(statistics.median(delays), 1),
            "p95": round(_percentile(delays, 0.95), 1),
            "max": round(max(delays), 1),
        },
        "web_cpu_ms_per_reply": round(busy_ticks * 1000 / CLK_TCK / replies, 2),
        "requests_per_reply": round(busy_requests / replies, 2),
        "idle_web_cpu_ms_per_listener_minute": round(idle_cpu_ms / args.visitors / idle_minutes, 2),
        "idle_requests_per_listener_minute": round(idle_requests / args.visitors / idle_minutes, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webchat_live", description=__doc__)
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between one visitor's messages")
    parser.add_argument("--idle", type=float, default=20)
    parser.add_argument("--ai-latency-ms", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--database-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--modes", default="sse,longpoll")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    log_dir = Path(tempfile.mkdtemp(prefix="webchat-live-"))
    with ExitStack() as stack:
        database = Database(args.database_admin_url)
        database.create()
        stack.callback(database.drop)
        redis_service, redis_port = start_redis(log_dir)
        stack.callback(redis_service.stop, 5)
        ai_service, ai_port = start_openai(log_dir, args.ai_latency_ms)
        stack.callback(ai_service.stop, 5)
        env = {
            "DATABASE_URL": database.url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{ai_port}/v1",
            "WEBHOOK_SECRET": "bench-secret",
            "WEBHOOK_VERIFY_TOKEN": "bench-verify",
            "ADMIN_API_KEY": ADMIN_KEY,
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
            "LOG_LEVEL": "warning",
            # Every listener gets a stream of its own: what is measured is the way, not the cap.
            "WEBCHAT_MAX_STREAMS": str(args.threads),
            "WEBCHAT_VISITOR_PER_MINUTE": "1000",
            "WEBCHAT_WIDGET_PER_MINUTE": "100000",
        }
        full_env = {**os.environ, **env}
        port = free_port()
        argv_web = gunicorn_argv(
            port, workers=args.web_workers, threads=args.threads, worker_class="gthread", keepalive=5
        )
        web = Service("gunicorn", argv_web, full_env, log_dir)
        stack.callback(web.stop, 20)
        workers = Service("workers", worker_argv(), full_env, log_dir)
        stack.callback(workers.stop, 30)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base), timeout=60, what="gunicorn")
        widget_id = _provision(base)
        results = [measure(mode, base, widget_id, web.pid, args) for mode in args.modes.split(",")]

    report = {"command": " ".join(["python -m bench.webchat_live", *(argv or sys.argv[1:])]), "results": results}
    print(
        "| way | replies (lost) | delivery overhead p50 / p95 / max ms | web CPU ms per reply | requests per reply "
        "| idle: web CPU ms per listener-minute | idle: requests per listener-minute |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        delay = row["delivery_overhead_ms"]
        print(
            f"| {row['mode']} | {row['replies']} ({row['lost']}) | {delay['p50']} / {delay['p95']} / {delay['max']} "
            f"| {row['web_cpu_ms_per_reply']} | {row['requests_per_reply']} "
            f"| {row['idle_web_cpu_ms_per_listener_minute']} | {row['idle_requests_per_listener_minute']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _provision(base: str) -> str:
    admin = {"x-api-key": ADMIN_KEY}
    user = requests.post(f"{base}/users", json={"email": "live@shop.example"}, headers=admin, timeout=10).json()
    key = {"x-api-key": user["api_key"]}
    user_id = user["user"]["user_id"]
    channel = requests.post(
        f"{base}/users/{user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "shop.example", "allowed_origins": [ORIGIN]},
        headers=key,
        timeout=10,
    ).json()
    widget_id: str = channel["phone_number_id"]
    agent = {"name": "Site", "prompt_id": "pmpt_live", "phone_number_id": widget_id}
    requests.post(f"{base}/users/{user_id}/agents", json=agent, headers=key, timeout=10).raise_for_status()
    requests.post(f"{base}/users/{user_id}/credits", json={"amount": 1_000_000}, headers=admin, timeout=10)
    return widget_id


if __name__ == "__main__":
    main()
