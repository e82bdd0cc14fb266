"""One scenario from start to figures: a fresh database on the private PostgreSQL, a private Redis, the
stand-ins, gunicorn and `mcagent worker`; provisioning and warm-up; the load with the fault on a timeline;
the drain; the counts. Everything started is stopped, also when something fails."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from bench.analysis import ReplyLog, timeseries
from bench.faults.figures import delivery_figures, problems
from bench.faults.postgres import PrivatePostgres
from bench.faults.proxy import DelayProxies
from bench.faults.scenarios import Action, Scenario
from bench.faults.upstreams import FaultyGraph, FaultyOpenAI
from bench.load import Redelivery, Results, Schedule, Step, build_schedule, drive
from bench.procstats import ProcessMonitor, all_stats
from bench.run import ADMIN_KEY, WEBHOOK_SECRET, provision, warm_up
from bench.system import Database, Service, gunicorn_argv, start_redis, worker_argv
from tests.support.processes import free_port, wait_for
from tests.support.secrets import TEST_TOKEN_KEY

WEBHOOK_PATH = "/webhook/meta"
#: What differs from one line to the next of the same event: ports, ids, addresses.
_VARYING = (
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\bport \d+"), "port <port>"),
    (re.compile(r"\b(conv|msg|resp)_\w+"), r"\1_…"),
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "0x…"),
)

#: Shorter than the defaults (30 s, 30 s, 10 s) so that work stalled by a fault is taken up again within
#: seconds and a run stays short; still well above a turn's duration (the lock is renewed while it is held).
TIMINGS = {"LOCK_TTL_MS": "10000", "RECOVERY_AFTER_MS": "10000", "RECOVERY_INTERVAL_MS": "2000"}

#: Meta's redelivery on a compressed clock: 1, 2, 4, 8, 10, 10 … s apart, for up to 3 minutes.
REDELIVERY = Redelivery(first_delay_s=1.0, max_delay_s=10.0, give_up_after_s=180.0)


@dataclass(frozen=True)
class Options:
    rate: float
    customers: int
    numbers: int
    burst_fraction: float
    ai_latency_ms: int
    fault_at_s: float
    after_fault_s: float
    drain_timeout_s: float
    senders: int
    seed: int

    def drive_s(self, scenario: Scenario) -> float:
        return self.fault_at_s + scenario.lasts_s + self.after_fault_s


class RestartableRedis:
    """A private redis-server without persistence, which a fault kills and brings back, empty, on its port."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.service, self.port = start_redis(log_dir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> int:
        self.service.stop(5, signal.SIGKILL)
        return self.service.pid

    def start(self) -> int:
        self.service, _ = start_redis(self.log_dir, self.port)
        return self.service.pid

    def stop(self) -> None:
        self.service.stop(5)


@dataclass
class Rig:
    """One scenario's running system: what the load drives and the faults act on."""

    postgres: PrivatePostgres
    database: Database
    redis: RestartableRedis
    openai: FaultyOpenAI
    graph: FaultyGraph
    replies: ReplyLog
    proxies: DelayProxies | None
    web: Service
    web_port: int  # where the load is sent: gunicorn, or the proxy in front of it
    workers: Service
    queue_name: str

    def supervised_pids(self) -> list[int]:
        return sorted(stat.pid for stat in all_stats().values() if stat.ppid == self.workers.pid)


class FaultTimeline(threading.Thread):
    """Injects the scenario's fault at `at` (monotonic) and heals it `lasts_s` later, or at once on `finish()`:
    a crashed PostgreSQL must come back whatever happens. `over` is set once the fault has ended.

    The thread lives on until `finish()`: a process a heal starts (Redis back) gets SIGTERM when the thread
    that started it ends (`Service` asks for PR_SET_PDEATHSIG, which follows the parent thread).
    """

    def __init__(self, scenario: Scenario, rig: Rig, at: float) -> None:
        super().__init__(name="fault", daemon=True)
        self.scenario = scenario
        self.rig = rig
        self.at = at
        self.over = threading.Event()
        self.started: float | None = None
        self.ended: float | None = None
        self.details: dict[str, Any] = {}
        self.errors: list[str] = []
        self._finishing = threading.Event()

    def run(self) -> None:
        try:
            self._inject_and_heal()
        finally:
            self.over.set()
        self._finishing.wait()

    def finish(self) -> None:
        self._finishing.set()
        self.join(90)

    def _inject_and_heal(self) -> None:
        scenario = self.scenario
        if scenario.inject is None or self._finishing.wait(max(0.0, self.at - time.monotonic())):
            return
        self.started = time.monotonic()
        self._act("inject", scenario.inject)
        if scenario.heal is not None:
            self._finishing.wait(max(0.0, self.started + scenario.lasts_s - time.monotonic()))
            self._act("heal", scenario.heal)
        self.ended = time.monotonic() if scenario.lasts_s else self.started

    def _act(self, step: str, action: Action) -> None:
        try:
            self.details[step] = action(self.rig)
        except Exception as error:
            self.errors.append(f"{step}: {error!r}")


def service_env(database_url: str, redis_url: str, ai_port: int, graph_port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OPENAI_API_KEY": "sk-faults",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{ai_port}/v1",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}/v24.0",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_VERIFY_TOKEN": "faults-verify",
        "ADMIN_API_KEY": ADMIN_KEY,
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        "LOG_LEVEL": "info",
        **TIMINGS,
    }


def run_scenario(scenario: Scenario, options: Options, postgres: PrivatePostgres, run_dir: Path) -> dict[str, Any]:
    log_dir = run_dir / scenario.name
    log_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"scenario": scenario.name, "fault": scenario.fault, "logs_dir": str(log_dir)}
    services: dict[str, Service] = {}
    with ExitStack() as stack:
        try:
            rig = _start(stack, scenario, options, postgres, log_dir, services)
            out.update(_drive_and_count(stack, rig, scenario, options))
        except Exception as error:
            out["error"] = repr(error)
            out["problems"] = [f"the scenario did not run to the end: {error!r}"]
            out["log_tails"] = {name: service.tail() for name, service in services.items()}
        finally:
            out["log_events"] = {name: log_events(service.log_path) for name, service in services.items()}
    return out


def _start(
    stack: ExitStack,
    scenario: Scenario,
    options: Options,
    postgres: PrivatePostgres,
    log_dir: Path,
    services: dict[str, Service],
) -> Rig:
    """The system on a fresh database and Redis, provisioned and warmed up; `stack` stops it."""
    database = Database(postgres.admin_url)
    database.create()
    stack.callback(database.drop)
    redis_server = RestartableRedis(log_dir)
    stack.callback(redis_server.stop)
    sent_log = log_dir / "graph-sent.jsonl"
    openai = stack.enter_context(FaultyOpenAI(latency_ms=options.ai_latency_ms, seed=options.seed))
    graph = stack.enter_context(FaultyGraph(stack.enter_context(sent_log.open("a")), seed=options.seed))
    ai_port, graph_port = openai.port, graph.port
    proxies: DelayProxies | None = None
    if scenario.delayed_network:
        proxies = DelayProxies()
        stack.callback(proxies.close)
        ai_port, graph_port = proxies.add(ai_port), proxies.add(graph_port)
    env = {**os.environ, **service_env(database.url, redis_server.url, ai_port, graph_port)}
    web_port = free_port()
    web = services["web"] = Service("gunicorn", _gunicorn(web_port), env, log_dir)
    stack.callback(web.stop, 20)
    base_url = f"http://127.0.0.1:{web_port}"
    wait_for(lambda: _healthy(base_url, web), timeout=60, what=f"gunicorn (log: {web.log_path})")
    workers = services["workers"] = Service("workers", worker_argv(), env, log_dir)
    stack.callback(workers.stop, 45)
    shape = argparse.Namespace(numbers=options.numbers, tenants=0, warmup_timeout=60.0)
    provision(base_url, shape)
    replies = ReplyLog(sent_log)
    warm_up(base_url, shape, replies, [workers])
    return Rig(
        postgres=postgres,
        database=database,
        redis=redis_server,
        openai=openai,
        graph=graph,
        replies=replies,
        proxies=proxies,
        web=web,
        web_port=proxies.add(web_port) if proxies is not None else web_port,
        workers=workers,
        queue_name=env.get("QUEUE_NAME", "mcagent"),
    )


def _drive_and_count(stack: ExitStack, rig: Rig, scenario: Scenario, options: Options) -> dict[str, Any]:
    """The load with the fault on its timeline, the drain, and the scenario's figures."""
    schedule = build_schedule(
        steps=[Step(options.rate, options.drive_s(scenario))],
        customers=options.customers,
        numbers=options.numbers,
        burst_fraction=options.burst_fraction,
        max_messages=100_000,
        secret=WEBHOOK_SECRET,
        seed=options.seed,
    )
    first_turn = _last_turn_id(rig.database.url)
    ai_calls_before = rig.openai.responses_calls()
    # No retries: while Redis is down, the monitor should note it and go on sampling.
    queue = redis.Redis(port=rig.redis.port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    stack.callback(queue.close)
    monitor = ProcessMonitor(
        service_roots=[rig.web.pid, rig.workers.pid],
        supervisor_pids=[rig.workers.pid],
        web_pid=rig.web.pid,
        redis_pid=None,
        harness_pids=[os.getpid()],
        database_name=rig.database.name,
        queue_depth=lambda: queue.llen(f"mcagent:due:{rig.queue_name}"),
    )
    monitor.start()
    stack.callback(monitor.stop)
    start_at = time.monotonic() + 0.5
    timeline = FaultTimeline(scenario, rig, start_at + options.fault_at_s)
    timeline.start()
    stack.callback(timeline.finish)
    results, start_at, drive_end = drive(
        schedule,
        port=rig.web_port,
        path=WEBHOOK_PATH,
        senders=options.senders,
        grace_s=10.0,
        stop=threading.Event(),
        start_at=start_at,
        redelivery=REDELIVERY,
    )
    timeline.over.wait(120)
    drain_ended, drain_end = _drain(schedule, results, rig.replies, rig.database.url, first_turn, options)
    monitor.stop()
    for service in (rig.workers, rig.web):
        service.stop(45)
    rig.replies.poll()

    fault_start = timeline.started or start_at + options.fault_at_s
    figures = delivery_figures(
        schedule,
        results,
        rig.replies.replies,
        rig.graph.refused_final,
        ai_latency_s=options.ai_latency_ms / 1000,
        start_at=start_at,
        drive_end=drive_end,
        fault_start=fault_start,
        anchor=timeline.ended or fault_start,
    )
    answered_at = figures.pop("_answered_at")
    database = _database_figures(rig.database.url, first_turn, figures["lost_messages"])
    turns = database["turns_by_status"]
    answered_turns = turns.get("done", 0) + turns.get("replying", 0)
    ai_calls = rig.openai.responses_calls() - ai_calls_before
    return {
        "fault_timeline": {
            "started_s": None if timeline.started is None else round(timeline.started - start_at, 2),
            "ended_s": None if timeline.ended is None else round(timeline.ended - start_at, 2),
            "recovery_counted_from": "end" if scenario.lasts_s else "start (one-shot fault)",
            "details": timeline.details,
            "errors": timeline.errors,
        },
        "load": {
            "rate": options.rate,
            "drive_s": round(drive_end - start_at, 2),
            "drain_s": round(drain_end - drive_end, 2),
            "drain_ended": drain_ended,
            "customers": options.customers,
            "numbers": options.numbers,
            "bursts": schedule.bursts,
            "burst_messages": schedule.burst_messages,
        },
        **figures,
        "ai": {
            "responses_calls": ai_calls,
            "turns_answered": answered_turns,
            "turns_failed": turns.get("failed", 0),
            "calls_per_answered_turn": round(ai_calls / answered_turns, 3) if answered_turns else None,
            "openai_failures_injected": dict(rig.openai.injected),
        },
        "graph": {"failures_injected": dict(rig.graph.injected), "replies_refused": len(rig.graph.refused)},
        "database": database,
        "problems": problems(figures["counts"]) + [f"the fault's {error}" for error in timeline.errors],
        "timeseries": timeseries(results, answered_at, rig.replies.replies, monitor.samples, start_at, drain_end),
    }


def log_events(path: Path, top: int = 20) -> list[tuple[str, int]]:
    """The log's lines grouped by level, logger and event (and reason; ports and ids left out), most frequent first:
    what an operator would see."""
    counts: Counter[str] = Counter()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
            event = f"{record.get('level', '?')} {record.get('logger', '?')}: {str(record.get('event', ''))[:140]}"
            if record.get("reason") or record.get("error"):
                event += f" ({str(record.get('reason') or record.get('error'))[:140]})"
        except ValueError:
            if not line.strip() or line.startswith((" ", "Traceback")):
                continue
            event = f"text: {line[:160]}"
        for pattern, replacement in _VARYING:
            event = pattern.sub(replacement, event)
        counts[event] += 1
    return counts.most_common(top)


def _gunicorn(port: int) -> list[str]:
    return gunicorn_argv(port, workers=2, threads=8, worker_class="gthread", keepalive=10)


def _healthy(base_url: str, web: Service) -> bool:
    if not web.alive():
        raise RuntimeError(f"gunicorn exited: {web.tail()}")
    try:
        return requests.get(f"{base_url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _last_turn_id(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(turn_id), 0) FROM turns").fetchone()
    return int(row[0]) if row else 0


def _in_flight(database_url: str, first_turn: int) -> int | None:
    """Measured messages neither answered nor failed nor skipped, and turns not ended; None if unknown."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM messages WHERE direction = 'inbound' AND text LIKE 'c%%'"
                "        AND status NOT IN ('answered', 'failed', 'skipped'))"
                "     + (SELECT count(*) FROM turns WHERE turn_id > %s AND status NOT IN ('done', 'failed'))",
                (first_turn,),
            ).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def _drain(
    schedule: Schedule, results: Results, replies: ReplyLog, database_url: str, first_turn: int, options: Options
) -> tuple[str, float]:
    """Until every acknowledged message is answered; or nothing is left in flight in the database twice in a row
    (2 s apart: what is unanswered then stays so); or the drain timeout passes. Returns how it ended."""
    wanted = {("c", d.customer, d.seq) for d in schedule.deliveries if results.status[d.index] == 200}
    deadline = time.monotonic() + options.drain_timeout_s
    quiet_checks = 0
    next_check = time.monotonic() + 2.0
    while True:
        replies.poll()
        if wanted <= replies.answered:
            return "every acknowledged message answered", time.monotonic()
        if time.monotonic() >= deadline:
            return "drain timeout", time.monotonic()
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + 2.0
            quiet_checks = quiet_checks + 1 if _in_flight(database_url, first_turn) == 0 else 0
            if quiet_checks >= 2:
                return "nothing left in flight", time.monotonic()
        time.sleep(0.25)


def _database_figures(database_url: str, first_turn: int, lost: list[str]) -> dict[str, Any]:
    """What PostgreSQL holds for the measured messages: statuses with their reasons and codes, and the lost ones."""
    with psycopg.connect(database_url, autocommit=True) as conn:

        def grouped(statement: str, *params: object) -> dict[str, int]:
            return {str(key): int(count) for key, count in conn.execute(statement, params).fetchall()}

        inbound = grouped(
            "SELECT status || coalesce(' / ' || left(failure_reason, 100), ''), count(*) FROM messages"
            " WHERE direction = 'inbound' AND text LIKE 'c%%' GROUP BY 1 ORDER BY 2 DESC"
        )
        outbound = grouped(
            "SELECT status || coalesce(' / ' || failure_code, '') || coalesce(' ' || left(failure_reason, 60), ''),"
            " count(*) FROM messages WHERE direction = 'outbound' AND turn_id > %s GROUP BY 1 ORDER BY 2 DESC",
            first_turn,
        )
        turns = grouped("SELECT status, count(*) FROM turns WHERE turn_id > %s GROUP BY 1", first_turn)
        resumed = conn.execute(
            "SELECT count(*) FILTER (WHERE attempts > 0) FROM turns WHERE turn_id > %s", (first_turn,)
        ).fetchone()
        lost_states = grouped(
            "SELECT status || coalesce(' / ' || left(failure_reason, 100), ''), count(*) FROM messages"
            " WHERE direction = 'inbound' AND text = ANY(%s) GROUP BY 1 ORDER BY 2 DESC",
            lost,
        )
    return {
        "inbound_by_status": inbound,
        "outbound_by_status": outbound,
        "turns_by_status": turns,
        "turns_resumed": int(resumed[0]) if resumed else 0,
        "lost_by_status": lost_states,
    }
