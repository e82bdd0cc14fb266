"""CPU of one message through the pipeline's use cases, single-threaded, without HTTP server or RQ.

    python -m bench.turn_cpu [--messages 400] [--profile] [KEY=VALUE ...]

Then the CPU of one lead extraction (`ExtractLead`) of each of those conversations (a customer's message and
the agent's reply), the same way.

Real PostgreSQL (a fresh database, dropped at the end) and Redis db 12, the stand-ins in their own
processes, so `time.process_time()` counts this process only: the webhook's use case per message
(`HandleInboundMessage`) and the worker's per turn (`ProcessPendingMessages`, a new customer each
time, so every turn also creates its OpenAI conversation). `--profile` prints the top functions by
cumulative CPU. KEY=VALUE pairs are service settings (e.g. MARK_AS_READ=false).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
import redis
from rq import Queue

from adapters.postgres.migrations import apply_migrations
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.extract_lead import ExtractLeadCommand
from application.use_cases.handle_inbound_message import HandleInbound
from application.use_cases.process_pending_messages import ProcessScope
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import ChannelType
from domain.messages import InboundMessage
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.processes import free_port, wait_for
from tests.support.secrets import TEST_TOKEN_KEY

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.turn_cpu", description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    name = f"mcagent_turn_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    ai_port, graph_port = free_port(), free_port()
    standins = [
        subprocess.Popen([sys.executable, "-m", "tests.support.standin_openai", "--port", str(ai_port)]),
        subprocess.Popen([sys.executable, "-m", "tests.support.standin_graph", "--port", str(graph_port)]),
    ]
    try:
        apply_migrations(database_url)
        _measure(args, database_url, ai_port, graph_port)
    finally:
        for process in standins:
            process.terminate()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measure(args: argparse.Namespace, database_url: str, ai_port: int, graph_port: int) -> None:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{ai_port}/v1",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}/v24.0",
        "WEBHOOK_SECRET": "s",
        "WEBHOOK_VERIFY_TOKEN": "v",
        "ADMIN_API_KEY": "a",
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        "LOG_LEVEL": "warning",
        **dict(pair.split("=", 1) for pair in args.settings),
    }
    settings = Settings.from_env(env)
    container = build_container(settings)
    container.init_resources()
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    wait_for(lambda: _answers(ai_port) and _answers(graph_port), timeout=20, what="the stand-ins")
    user = container.create_user()(CreateUserCommand(email="bench@example.com")).user
    container.add_channel()(AddChannelCommand(user.user_id, ChannelType.WHATSAPP, "+1", "t", phone_number_id="100"))
    container.create_agent()(CreateAgentCommand(user.user_id, "agent", "pmpt_bench", "100"))
    container.top_up_credits()(TopUpCommand(user.user_id, 1_000_000))
    handle, process = container.handle_inbound_message(), container.process_pending_messages()
    queue = Queue(settings.queue_name, connection=client)
    warm, total = 20, args.messages
    messages = [
        InboundMessage(
            "100",
            f"wamid.{uuid.uuid4().hex}",
            f"1555{n:07d}",
            "C",
            "text",
            f"hello {n}",
            None,
            datetime.now(UTC),
            {"type": "text"},
        )
        for n in range(total)
    ]
    for n in range(warm):
        handle(HandleInbound(messages[n]))
        process(ProcessScope(f"conversation:{n + 1}"))
    profiles = [cProfile.Profile(time.process_time) for _ in range(3)]
    started = time.process_time()
    with _profiled(profiles[0], args.profile):
        for message in messages[warm:]:
            handle(HandleInbound(message))
    ingested = time.process_time()
    queue.empty()
    with _profiled(profiles[1], args.profile):
        for n in range(warm, total):
            process(ProcessScope(f"conversation:{n + 1}"))
    done = time.process_time()
    extract = container.extract_lead()
    for n in range(warm):
        extract(ExtractLeadCommand(n + 1))
    read_from = time.process_time()
    with _profiled(profiles[2], args.profile):
        for n in range(warm, total):
            extract(ExtractLeadCommand(n + 1))
    read = time.process_time()
    count = total - warm
    print(f"HandleInboundMessage: {1000 * (ingested - started) / count:.2f} ms CPU per message")
    print(
        f"ProcessPendingMessages: {1000 * (done - ingested) / count:.2f} ms CPU per turn"
        f"{' (under the profiler)' if args.profile else ''}"
    )
    print(
        f"ExtractLead: {1000 * (read - read_from) / count:.2f} ms CPU per reading"
        f"{' (under the profiler)' if args.profile else ''}"
    )
    if args.profile:
        for label, profile in zip(("ingest", "turn", "extraction"), profiles, strict=True):
            print(f"===== {label}")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    container.shutdown_resources()


class _profiled:
    def __init__(self, profile: cProfile.Profile, enabled: bool) -> None:
        self._profile, self._enabled = profile, enabled

    def __enter__(self) -> None:
        if self._enabled:
            self._profile.enable()

    def __exit__(self, *_: object) -> None:
        if self._enabled:
            self._profile.disable()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
