"""`python -m bench.run`: start the real system, drive signed WhatsApp webhooks (or a mix of WhatsApp,
Instagram and web chat: `--channels`, `--channel-costs`), print one JSON report.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import redis
import requests

from adapters.io_counts import COUNTS_KEY, FLUSH_EVERY_S
from adapters.rq.background import background_queue_name
from bench import gcstats, mix, procstats, profiling
from bench.analysis import (
    ExtractionCounts,
    ReplyLog,
    extraction_figures,
    ingest_figures,
    io_figures,
    reply_figures,
    timeseries,
    turn_figures,
)
from bench.groups import (
    SCALING_CHOICES,
    Shape,
    group_split,
    roles_across_groups,
    scaling_comparison,
    scaling_shapes,
    service_names,
)
from bench.load import Results, Schedule, Step, accepted_status, build_delivery, build_schedule, drive
from bench.procstats import ProcessMonitor, all_stats, children_by_start, supervisor_roles
from bench.system import (
    ROOT,
    Database,
    Service,
    free_port,
    gunicorn_argv,
    seed_literal_worker_argv,
    start_graph,
    start_openai,
    start_redis,
    wait_for,
    worker_argv,
)
from tests.support.secrets import TEST_TOKEN_KEY

WEBHOOK_SECRET = "bench-webhook-secret"
ADMIN_KEY = "bench-admin-key"
RESULTS = ROOT / "bench" / "results"

CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    # The seed, literally: a whole business number served one message at a time (the ordering scope), one
    # process per job (`seed_literal_worker_argv`).
    "seed-literal": {"ORDERING_SCOPE": "phone_number"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    load = parser.add_argument_group("load")
    load.add_argument("--rate", type=float, default=100.0, help="messages/s offered; 0 = as fast as possible")
    load.add_argument("--duration", type=float, default=60.0, help="seconds of driving")
    load.add_argument(
        "--steps",
        default="",
        help="a load profile instead of --rate/--duration: 'RATE:SECONDS,RATE:SECONDS,…' (e.g. 20:15,150:30,20:15)",
    )
    load.add_argument("--customers", type=int, default=1000)
    load.add_argument("--numbers", type=int, default=20, help="business numbers (channels, one agent each)")
    load.add_argument("--tenants", type=int, default=0, help="users owning the numbers (default: one per number)")
    load.add_argument("--burst-fraction", type=float, default=0.1, help="share of events that are 2–4 messages")
    load.add_argument("--max-messages", type=int, default=100_000, help="cap on the deliveries of one run")
    load.add_argument("--senders", type=int, default=32, help="load-generator threads (keep-alive connections)")
    load.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for replies after driving")
    load.add_argument("--seed", type=int, default=1)
    load.add_argument(
        "--channels",
        default=mix.WHATSAPP,
        help="channel types of the numbers, in turn: number n is of the (n mod count)th; e.g. "
        "whatsapp,instagram,webchat (same customers and numbers in total)",
    )
    load.add_argument(
        "--channel-costs",
        action="store_true",
        help="one run per channel type of --channels (all three when it is left at whatsapp), then a table of "
        "the cost per message of each",
    )
    system = parser.add_argument_group("system")
    system.add_argument("--config", choices=["default", "seed-literal", "both"], default="default")
    system.add_argument("--ingest-only", action="store_true", help="gunicorn only, as fast as possible (--rate 0)")
    system.add_argument("--ai-latency-ms", type=int, default=1000)
    system.add_argument("--web-workers", type=int, default=2)
    system.add_argument("--threads", type=int, default=8, help="gunicorn threads per web worker")
    system.add_argument("--web-worker-class", default="gthread")
    system.add_argument("--web-keepalive", type=int, default=10, help="gunicorn --keep-alive seconds")
    system.add_argument("--workers", type=int, default=2, help="WORKER_CONCURRENCY (worker processes)")
    system.add_argument("--worker-threads", type=int, default=100, help="WORKER_THREADS (jobs at once per process)")
    system.add_argument(
        "--worker-groups",
        type=int,
        default=1,
        help="independent `mcagent worker` supervisors, as if on as many hosts; --workers and --worker-threads "
        "are per group",
    )
    system.add_argument(
        "--scaling",
        choices=SCALING_CHOICES,
        help="the same load on one worker group, then on two sharing its threads (split), two of them each "
        "(double), or both (all); one report with a comparison",
    )
    system.add_argument("--pool-size", type=int, default=6, help="DATABASE_POOL_SIZE per process")
    system.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra service env")
    system.add_argument("--web-env", action="append", default=[], metavar="KEY=VALUE", help="extra env, gunicorn only")
    system.add_argument(
        "--worker-env", action="append", default=[], metavar="KEY=VALUE", help="extra env, mcagent worker only"
    )
    system.add_argument(
        "--harness-nice",
        type=int,
        default=-5,
        help="nice value of the load generator and stand-ins (external systems in reality: not starved by the "
        "service); 0 = same priority as the service",
    )
    system.add_argument("--database-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    system.add_argument("--warmup-timeout", type=float, default=60.0)
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="also write the report to this file")
    output.add_argument("--timeseries", choices=["full", "none"], default="full")
    output.add_argument("--profile", action="store_true", help="py-spy the web and worker processes")
    output.add_argument(
        "--gc-pauses", action="store_true", help="time the service processes' garbage collections (bench/gcstats.py)"
    )
    output.add_argument("--profile-seconds", type=float, default=20.0)
    output.add_argument("--profile-rate", type=int, default=50, help="py-spy samples/s")
    args = parser.parse_args(argv)
    if args.ingest_only and not args.steps:
        args.rate = 0.0
    for item in [*args.env, *args.web_env, *args.worker_env]:
        if "=" not in item:
            parser.error(f"--env {item!r}: expected KEY=VALUE")
    try:
        args.channel_types = mix.parse_channels(args.channels)
    except ValueError as error:
        parser.error(str(error))
    if args.channel_costs and args.channel_types == [mix.WHATSAPP]:
        args.channel_types = list(mix.CHANNEL_TYPES)
    if (args.channel_costs or args.channel_types != [mix.WHATSAPP]) and (args.config == "both" or args.ingest_only):
        parser.error("--channels / --channel-costs run the default configuration, with workers")
    if args.worker_groups < 1:
        parser.error("--worker-groups: at least 1")
    if args.ingest_only and (args.worker_groups > 1 or args.scaling):
        parser.error("--ingest-only starts no workers: no --worker-groups or --scaling")
    if args.scaling and (args.worker_groups > 1 or args.config == "both" or args.channel_costs):
        parser.error("--scaling sets the worker groups of its runs: no --worker-groups, --config both, --channel-costs")
    try:
        args.shapes = (
            scaling_shapes(args.scaling, args.workers, args.worker_threads)
            if args.scaling
            else [Shape(args.worker_groups, args.workers, args.worker_threads)]
        )
    except ValueError as error:
        parser.error(str(error))
    return args


def steps_of(args: argparse.Namespace) -> list[Step]:
    if not args.steps:
        return [Step(args.rate, args.duration)]
    steps = []
    for part in args.steps.split(","):
        rate, _, seconds = part.partition(":")
        steps.append(Step(float(rate), float(seconds)))
    return steps


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = datetime.now(UTC)
    names = ["default", "seed-literal"] if args.config == "both" else [args.config]
    # Each run: its configuration, the channel types of its numbers and its worker groups.
    plan = [(name, args.channel_types, shape) for name in names for shape in args.shapes]
    if args.channel_costs:
        plan = [(args.config, [kind], args.shapes[0]) for kind in args.channel_types]
    report: dict[str, Any] = {
        "benchmark": "mcagent webhook → worker → AI stand-in → Graph stand-in",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {**machine_info(), "postgres": postgres_version(args.database_admin_url)},
        "code": code_info(),
        "options": {key: _option(value) for key, value in vars(args).items()},
        "runs": [],
    }
    exit_code = 0
    try:
        for name, channel_types, shape in plan:
            run = run_once(args, name, started, channel_types, shape)
            report["runs"].append(run)
            if run.get("error"):
                exit_code = 1
    except KeyboardInterrupt:
        report["interrupted"] = True
        exit_code = 130
    if args.channel_costs:
        rows = [mix.cost_row(run["channels"][0], run) for run in report["runs"]]
        report["channel_costs"] = rows
        print(mix.cost_table(rows), file=sys.stderr)
    elif args.scaling:
        report["comparison"] = scaling_comparison(report["runs"])
    elif len(report["runs"]) == 2:
        rates = [run.get("e2e", {}).get("replies_per_s") for run in report["runs"]]
        if all(isinstance(rate, int | float) and rate for rate in rates):
            report["comparison"] = {
                "replies_per_s": dict(zip(names, rates, strict=True)),
                "throughput_ratio_default_over_seed_literal": round(rates[0] / rates[1], 2),
            }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return exit_code


def _option(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list) and value and isinstance(value[0], Shape):
        return [shape.label for shape in value]
    return value


def service_env(
    args: argparse.Namespace,
    config: str,
    *,
    database_url: str,
    redis_port: int,
    ai: int,
    graph: int,
    channel_types: list[str] | None = None,
) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{ai}/v1",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph}/v24.0",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_VERIFY_TOKEN": "bench-verify",
        "ADMIN_API_KEY": ADMIN_KEY,
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        "WORKER_CONCURRENCY": str(args.workers),
        "WORKER_THREADS": str(args.worker_threads),
        "DATABASE_POOL_SIZE": str(args.pool_size),
        "LOG_LEVEL": "warning",
        # The service counts its Redis round trips and PostgreSQL statements (the report's `io`);
        # `--env IO_COUNTS=false` runs without, to measure what counting costs.
        "IO_COUNTS": "true",
        **CONFIGS[config],
    }
    if config == "seed-literal":
        # One process per job and one job per number at a time: more processes than numbers cannot help,
        # fewer would understate the seed's design.
        env["WORKER_CONCURRENCY"] = str(max(args.workers, args.numbers))
    if mix.INSTAGRAM in (channel_types or []):
        env["INSTAGRAM_API_BASE_URL"] = f"http://127.0.0.1:{graph}/v24.0"
    if mix.WEBCHAT in (channel_types or []):
        env.update(mix.WEBCHAT_ENV)
    env.update(_pairs(args.env))
    return env


def _pairs(items: list[str]) -> dict[str, str]:
    return {key: value for key, _, value in (item.partition("=") for item in items)}


def _renice(pid: int, value: int) -> bool:
    if value == 0:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, pid, value)
        return True
    except OSError:
        return False


def run_once(
    args: argparse.Namespace,
    config: str,
    started: datetime,
    channel_types: list[str] | None = None,
    shape: Shape | None = None,
) -> dict[str, Any]:
    """One configuration, from a fresh database and redis to the figures; everything started is stopped.

    `shape` (default: `--worker-groups` of `--workers` × `--worker-threads`) says how many worker groups,
    each of how many processes and threads."""
    shape = shape or Shape(args.worker_groups, args.workers, args.worker_threads)
    args = argparse.Namespace(**{**vars(args), "workers": shape.workers, "worker_threads": shape.threads})
    channel_types = channel_types or [mix.WHATSAPP]
    mixed = channel_types != [mix.WHATSAPP]
    suffix = f"{'-ingest' if args.ingest_only else ''}{'-' + '-'.join(channel_types) if mixed else ''}"
    if shape.groups > 1 or args.scaling:
        suffix += f"-{shape.slug}"
    run_dir = RESULTS / f"{started.strftime('%Y%m%d-%H%M%S')}-{config}{suffix}"
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    sent_log = run_dir / "graph-sent.jsonl"
    out: dict[str, Any] = {"config": config, "ingest_only": args.ingest_only, "results_dir": str(run_dir)}
    out["channels"] = channel_types
    if not args.ingest_only:
        out["worker_groups"] = shape.groups
        out["worker_shape"] = shape.label
    channels = mix.Channels(channel_types, args.numbers)
    services: dict[str, Service] = {}
    speed_before = procstats.speed_probe_ms()
    wakeup_before = procstats.wakeup_probe()
    with ExitStack() as stack:
        try:
            database = Database(args.database_admin_url)
            database.create()
            stack.callback(database.drop)
            redis_service, redis_port = start_redis(log_dir)
            stack.callback(redis_service.stop, 5)
            ai_service, ai_port = start_openai(log_dir, args.ai_latency_ms)
            stack.callback(ai_service.stop, 5)
            graph_service, graph_port = start_graph(log_dir, sent_log)
            stack.callback(graph_service.stop, 5)
            env = service_env(
                args,
                config,
                database_url=database.url,
                redis_port=redis_port,
                ai=ai_port,
                graph=graph_port,
                channel_types=channel_types,
            )
            out["env"] = {
                key: value for key, value in env.items() if key not in ("DATABASE_URL", "TOKEN_ENCRYPTION_KEYS")
            }
            out["web_env"] = _pairs(args.web_env)
            out["worker_env"] = _pairs(args.worker_env)
            out["harness_reniced"] = all(
                _renice(pid, args.harness_nice) for pid in (os.getpid(), ai_service.pid, graph_service.pid)
            )
            full_env = {**os.environ, **env}
            gc_log = log_dir / "gc.log"
            if args.gc_pauses:
                full_env.update(gcstats.probe_env(gc_log, full_env.get("PYTHONPATH") or str(Path.cwd())))
            web_port = free_port()
            web = Service(
                "gunicorn",
                gunicorn_argv(
                    web_port,
                    workers=args.web_workers,
                    threads=args.threads,
                    worker_class=args.web_worker_class,
                    keepalive=args.web_keepalive,
                ),
                {**full_env, **_pairs(args.web_env)},
                log_dir,
            )
            services["web"] = web
            stack.callback(web.stop, 20)
            base_url = f"http://127.0.0.1:{web_port}"
            wait_for(lambda: _healthy(base_url, web), timeout=60, what=f"gunicorn (log: {web.log_path})")
            if not web.alive():
                raise RuntimeError(f"gunicorn exited: {web.tail()}")
            # One supervisor per worker group, each with its own environment copy and process tree.
            workers: list[Service] = []
            if not args.ingest_only:
                argv = seed_literal_worker_argv() if config == "seed-literal" else worker_argv()
                out["worker_command"] = " ".join(["python", *argv[1:]])
                for name in service_names(shape.groups):
                    group = Service(name, argv, {**full_env, **_pairs(args.worker_env)}, log_dir)
                    workers.append(group)
                    services[name] = group
                    stack.callback(group.stop, 45)
            redis_client = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=2)
            stack.callback(redis_client.close)
            queue_name = env.get("QUEUE_NAME", "mcagent")
            queue_key = f"mcagent:due:{queue_name}"  # scopes waiting for a drainer (adapters/rq/queue.py)

            provision(base_url, args, channels)
            widgets = [channels.ids[n] for n in range(args.numbers) if channels.type_of(n) == mix.WEBCHAT]
            replies = mix.WebchatReplyLog(sent_log, database.url, widgets) if widgets else ReplyLog(sent_log)
            if isinstance(replies, mix.WebchatReplyLog):
                stack.callback(replies.close)
            if widgets:
                customers = [(True, n) for n in range(args.numbers)] + [(False, c) for c in range(args.customers)]
                out["webchat_visitor_sessions"] = mix.open_visitor_sessions(base_url, channels, customers)
            out["warmup"] = warm_up(base_url, args, replies, workers, channels)

            schedule = build_schedule(
                steps=steps_of(args),
                customers=args.customers,
                numbers=args.numbers,
                burst_fraction=args.burst_fraction,
                max_messages=args.max_messages,
                secret=WEBHOOK_SECRET,
                seed=args.seed,
                build=channels.build_delivery,
            )
            monitor = ProcessMonitor(
                service_roots=[web.pid, *(group.pid for group in workers)],
                supervisor_pids=[group.pid for group in workers],
                web_pid=web.pid,
                redis_pid=redis_service.pid,
                harness_pids=[os.getpid(), ai_service.pid, graph_service.pid],
                database_name=database.name,
                queue_depth=lambda: redis_client.llen(queue_key),
            )
            monitor.start()
            stack.callback(monitor.stop)
            group_roles: list[dict[str, int]] = []
            if workers:
                # After the warm-up and every group's registration: one group may have answered it all.
                out["worker_groups_registered"] = registered(workers, redis_client, timeout=args.warmup_timeout)
                stats, rq_queues = all_stats(), rq_worker_queues(redis_client)
                group_roles = [
                    supervisor_roles(children_by_start(group.pid, stats), rq_queues, background_queue_name(queue_name))
                    for group in workers
                ]
                roles = roles_across_groups(group_roles)
                out["worker_roles"] = roles
                monitor.follow(roles)
            monitor.mark_baseline()
            window_from = datetime.now(UTC)
            io_before = io_counts(redis_client)

            profiler: profiling.Profiler | None = None
            if args.profile:
                targets = {"web": web.pid, **{group.name: group.pid for group in workers}}
                delay = max(0.0, min(schedule.duration_s / 3, schedule.duration_s - args.profile_seconds))
                profiler = profiling.Profiler(targets, run_dir, seconds=args.profile_seconds, rate=args.profile_rate)
                profiler.start_after(delay, monitor)
                stack.callback(profiler.stop)

            stop = threading.Event()
            results, start_at, drive_end = drive(
                schedule, port=web_port, path="/webhook/meta", senders=args.senders, grace_s=10.0, stop=stop
            )
            drained, drain_end = (
                (True, drive_end) if args.ingest_only else wait_for_replies(schedule, results, replies, args)
            )
            monitor.sample()
            replies.poll()
            out.update(
                figures(
                    args,
                    schedule,
                    results,
                    replies,
                    monitor,
                    start_at=start_at,
                    drive_end=drive_end,
                    end_at=drain_end,
                    drained=drained,
                    channels=channels,
                )
            )
            out["io"] = io_figures(
                io_before,
                io_counts_flushed(redis_client),
                per=out["ingest"]["accepted_200"] if args.ingest_only else out["e2e"]["messages_answered"],
            )
            out["service_alive_at_end"] = {name: service.alive() for name, service in services.items()}
            if workers:
                out["worker_group_split"] = group_split(
                    [group.name for group in workers],
                    cpu_s=[group.cpu_s() for group in monitor.worker_groups],
                    answered=out["e2e"]["messages_answered"],
                    roles=group_roles,
                    processes_at_end=[group.alive for group in monitor.worker_groups],
                )
            if profiler is not None:
                out["profile"] = profiler.finish()
            monitor.stop()
            window_to = datetime.now(UTC)
            # Stopped before counting, so that the count needs no connection slot the service holds.
            for service in [*workers, web]:
                service.stop(45)
            try:
                out["database"] = database_figures(database, results)
            except psycopg.Error as error:
                out["database"] = {"error": repr(error)}
            if workers:
                try:
                    out["cpu"].update(
                        turn_figures(
                            turns_started(database, window_from, window_to),
                            answered=out["e2e"]["messages_answered"],
                            workers_cpu_s=monitor.workers.cpu_s(),
                        )
                    )
                except psycopg.Error as error:
                    out["cpu"]["turns_error"] = repr(error)
                try:
                    out["extraction"] = extraction_figures(
                        extraction_counts(database, window_from, window_to),
                        answered=out["e2e"]["messages_answered"],
                        workers_cpu_s=monitor.workers.cpu_s(),
                        role_cpu_s={name: group.cpu_s() for name, group in monitor.roles.items()},
                        roles_whole_window=monitor.roles_whole_window(),
                    )
                except psycopg.Error as error:
                    out["extraction"] = {"error": repr(error)}
            out["log_warnings"] = {name: log_summary(service.log_path) for name, service in services.items()}
            if args.gc_pauses:
                answered = out["e2e"]["messages_answered"] if "e2e" in out else out["ingest"]["accepted_200"]
                out["gc_pauses"] = gcstats.gc_pause_figures(gc_log, start_at, drive_end, answered)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            out["error"] = repr(error)
            out["logs"] = {name: service.tail() for name, service in services.items()}
    # With everything of the run stopped: how fast the machine was just after (see `speed_probe_ms`).
    out["machine_speed_probe_ms"] = {"before": speed_before, "after": procstats.speed_probe_ms()}
    # The same, for work that follows a sleep, as a service's does at a modest rate (see `wakeup_probe`).
    out["machine_wakeup_probe"] = {"before": wakeup_before, "after": procstats.wakeup_probe()}
    return out


def _healthy(base_url: str, web: Service) -> bool:
    if not web.alive():
        return True  # stop waiting; the caller reports the exit
    try:
        return requests.get(f"{base_url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def provision(base_url: str, args: argparse.Namespace, channels: mix.Channels | None = None) -> None:
    """Users, numbers, agents and credits through the REST API, as an operator and its tenants would.

    Each number is of its type in `channels` (WhatsApp when none), whose `ids` get every number's id."""
    channels = channels or mix.Channels([mix.WHATSAPP], args.numbers)
    tenants = args.tenants or args.numbers
    with requests.Session() as session:

        def call(method: str, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = session.request(method, f"{base_url}{path}", headers={"x-api-key": key}, json=body, timeout=30)
            if answer.status_code != 201:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
            result: dict[str, Any] = answer.json()
            return result

        users: list[tuple[str, str]] = []
        for t in range(tenants):
            created = call("POST", "/users", ADMIN_KEY, {"email": f"bench{t}@example.com", "company_name": f"B{t}"})
            user_id, key = created["user"]["user_id"], created["api_key"]
            call("POST", f"/users/{user_id}/credits", ADMIN_KEY, {"amount": 10_000_000})
            users.append((user_id, key))
        for n in range(args.numbers):
            user_id, key = users[n % tenants]
            kind = channels.type_of(n)
            body: dict[str, Any] = {"type": kind, "display_name": f"Shop {n}"}
            if kind == mix.WEBCHAT:
                body["external_number"] = f"shop{n}.example"
            else:
                body["phone_number_id"] = channels.default_id(n)
                body["access_token"] = f"token-{body['phone_number_id']}"
                body["external_number"] = f"+1555{n:07d}" if kind == mix.WHATSAPP else f"@shop{n}"
            number = call("POST", f"/users/{user_id}/phone_numbers", key, body)["phone_number_id"]
            channels.ids[n] = number
            call(
                "POST",
                f"/users/{user_id}/agents",
                key,
                {"name": f"Agent {n}", "prompt_id": f"pmpt_bench{n}", "phone_number_id": number},
            )


def warm_up(
    base_url: str,
    args: argparse.Namespace,
    replies: ReplyLog,
    workers: list[Service],
    channels: mix.Channels | None = None,
) -> dict[str, Any]:
    """One message per number from a customer outside the measured set: opens pools and caches, proves the path."""
    from datetime import datetime as _datetime

    now = _datetime.now(UTC)
    build = channels.build_delivery if channels is not None else build_delivery
    statuses = []
    with requests.Session() as session:
        for n in range(args.numbers):
            delivery = build(n, n, 1, 0.0, n, WEBHOOK_SECRET, now, warmup=True)
            answer = session.post(
                f"{base_url}{delivery.path or '/webhook/meta'}",
                data=delivery.body,
                headers=delivery.headers(),
                timeout=30,
            )
            statuses.append(accepted_status(delivery, answer.status_code))
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"warm-up deliveries were not accepted: {statuses}")
    if not workers:
        return {"messages": args.numbers, "answered": None}
    wanted = {("w", n, 1) for n in range(args.numbers)}
    deadline = time.monotonic() + args.warmup_timeout
    began = time.monotonic()
    while time.monotonic() < deadline:
        replies.poll()
        if wanted <= replies.answered:
            break
        for group in workers:
            if not group.alive():
                raise RuntimeError(f"{group.name} exited: {group.tail()}")
        time.sleep(0.1)
    answered = len(wanted & replies.answered)
    if answered < len(wanted):
        raise RuntimeError(
            f"warm-up: {answered}/{len(wanted)} answered in {args.warmup_timeout} s; worker log: {workers[0].tail()}"
        )
    time.sleep(0.5)
    return {"messages": len(wanted), "answered": answered, "seconds": round(time.monotonic() - began, 2)}


def registered(workers: list[Service], client: redis.Redis, *, timeout: float) -> bool:
    """Wait until every supervisor has children and all but one of them (the sweeper) are registered RQ
    workers in Redis; False when `timeout` passes first (roles not told apart are then left out)."""
    deadline = time.monotonic() + timeout
    while True:
        stats, rq_queues = all_stats(), rq_worker_queues(client)
        children = [children_by_start(group.pid, stats) for group in workers]
        if all(len(pids) >= 2 and sum(1 for pid in pids if pid not in rq_queues) <= 1 for pids in children):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def wait_for_replies(
    schedule: Schedule, results: Results, replies: ReplyLog, args: argparse.Namespace
) -> tuple[bool, float]:
    """Until every accepted message is named by a reply, or the drain timeout passes."""
    wanted = {
        ("c", delivery.customer, delivery.seq)
        for delivery in schedule.deliveries
        if results.status[delivery.index] == 200
    }
    deadline = time.monotonic() + args.drain_timeout
    while True:
        replies.poll()
        if wanted <= replies.answered:
            return True, time.monotonic()
        if time.monotonic() >= deadline:
            return False, time.monotonic()
        time.sleep(0.25)


def figures(
    args: argparse.Namespace,
    schedule: Schedule,
    results: Results,
    replies: ReplyLog,
    monitor: ProcessMonitor,
    *,
    start_at: float,
    drive_end: float,
    end_at: float,
    drained: bool,
    channels: mix.Channels | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "load": {
            "steps": [{"rate": step.rate, "seconds": step.seconds} for step in steps_of(args)],
            "customers": schedule.customers,
            "numbers": schedule.numbers,
            "bursts": schedule.bursts,
            "burst_messages": schedule.burst_messages,
            "drive_s": round(drive_end - start_at, 2),
            "drain_s": round(end_at - drive_end, 2),
            "drained": drained,
        },
        "ingest": ingest_figures(schedule, results, start_at, drive_end),
    }
    accepted = out["ingest"]["accepted_200"]
    answered_at: dict[int, float] = {}
    if not args.ingest_only:
        e2e = reply_figures(
            schedule,
            results,
            replies.replies,
            ai_latency_s=args.ai_latency_ms / 1000,
            start_at=start_at,
            drive_end=drive_end,
            recipient_of=mix.recipient_function(channels),
        )
        answered_at = e2e.pop("_answered_at")
        out["correctness"] = e2e.pop("correctness")
        out["e2e"] = e2e
        if channels is not None and len(channels.types) > 1:
            out["by_channel"] = mix.per_channel_figures(
                schedule,
                results,
                replies.replies,
                channels,
                ai_latency_s=args.ai_latency_ms / 1000,
                start_at=start_at,
                drive_end=drive_end,
            )
    per = max(1, len(answered_at) if not args.ingest_only else accepted)
    unit = "message answered" if not args.ingest_only else "delivery accepted"
    busy, capacity = monitor.machine_busy()
    out["cpu"] = {
        "per": unit,
        "service_cpu_s": round(monitor.service.cpu_s(), 2),
        "service_cpu_s_sampled": round(monitor.service.cpu_sampled_s(), 2),
        "cpu_ms_per_message": round(1000 * monitor.service.cpu_s() / per, 3),
        # The same CPU split between the webhook (gunicorn) and the workers (`mcagent worker` and its pool).
        "service_cpu_ms_per_message": {
            "web": round(1000 * monitor.web.cpu_s() / per, 3),
            "workers": round(1000 * monitor.workers.cpu_s() / per, 3),
        },
        "redis_cpu_s": round(monitor.redis.cpu_s(), 2),
        "postgres_cpu_s": round(monitor.postgres.cpu_sampled_s(), 2),
        "postgres_all_databases_cpu_s": round(monitor.postgres_all.cpu_s(), 2),
        "infra_cpu_ms_per_message": {
            "redis": round(1000 * monitor.redis.cpu_s() / per, 3),
            "postgres": round(1000 * monitor.postgres.cpu_sampled_s() / per, 3),
        },
        "harness_cpu_s": round(monitor.harness.cpu_s(), 2),
        # The harness does the same work in every run of one command (its schedule, its replies): the service's
        # CPU per second of it compares runs on a machine whose speed drifts (bench/README.md, "The report").
        "service_per_harness_cpu": (
            round(monitor.service.cpu_s() / monitor.harness.cpu_s(), 3) if monitor.harness.cpu_s() else None
        ),
        # The kernel's share, and how often each role's threads waited and were woken, per message.
        "system_pct": {
            group.name: round(100 * group.system_s() / group.cpu_s(), 1) if group.cpu_s() else None
            for group in (monitor.web, monitor.workers)
        },
        "context_switches_per_message": {
            group.name: _switches_per_message(monitor, group, per) for group in (monitor.web, monitor.workers)
        },
        "machine_busy_cpu_s": round(busy, 2),
        "machine_cpu_capacity_s": round(capacity, 2),
        "machine_busy_pct": round(100 * busy / capacity, 1) if capacity else None,
        "machine_stolen_pct": round(100 * monitor.machine_stolen_s() / capacity, 1) if capacity else None,
        # Busy CPU of the machine not accounted above: other work running beside the benchmark skews it.
        "other_cpu_s": round(
            busy
            - monitor.service.cpu_s()
            - monitor.redis.cpu_s()
            - monitor.postgres_all.cpu_s()
            - monitor.harness.cpu_s(),
            2,
        ),
        "monitor_errors": monitor.errors[:5],
    }
    out["memory"] = {
        "service_peak_rss_mb": round(monitor.service.peak_rss / 2**20, 1),
        "service_peak_pss_mb": round(monitor.service.peak_pss / 2**20, 1),
        "service_processes_at_end": monitor.service.alive,
        "redis_peak_rss_mb": round(monitor.redis.peak_rss / 2**20, 1),
        "postgres_backends_peak": monitor.peak_postgres_backends,
    }
    if args.timeseries == "full":
        out["timeseries"] = timeseries(results, answered_at, replies.replies, monitor.samples, start_at, end_at)
    return out


def _switches_per_message(monitor: ProcessMonitor, group: procstats.Group, per: int) -> dict[str, float]:
    voluntary, involuntary = monitor.switches_since_baseline(group)
    return {"voluntary": round(voluntary / per, 2), "involuntary": round(involuntary / per, 2)}


def log_summary(path: Path, top: int = 8) -> dict[str, Any]:
    """Warning and error lines of a service log (JSON lines), grouped by event."""
    counts: dict[str, int] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            event = f"{record.get('level', '?')}: {str(record.get('event', ''))[:160]}"
        else:  # text, or a fragment that happens to be JSON (a process's stack dump, written over by another's)
            if not line.strip() or line.startswith(" "):
                continue
            event = f"text: {line[:160]}"
        counts[event] = counts.get(event, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return {"lines": sum(counts.values()), "top": [[event, count] for event, count in ordered[:top]]}


def database_figures(database: Database, results: Results) -> dict[str, Any]:
    """What Postgres holds at the end: inbound messages by status, turns by status (warm-up included)."""
    inbound = dict(database.query("SELECT status, count(*) FROM messages WHERE direction = 'inbound' GROUP BY status"))
    measured = database.query("SELECT count(*) FROM messages WHERE direction = 'inbound' AND text LIKE 'c%'")[0][0]
    figures: dict[str, Any] = {
        "inbound_by_status": inbound,
        "outbound_by_status": dict(
            database.query("SELECT status, count(*) FROM messages WHERE direction = 'outbound' GROUP BY status")
        ),
        "turns_by_status": dict(database.query("SELECT status, count(*) FROM turns GROUP BY status")),
        "measured_inbound_stored": measured,
    }
    accepted = sum(1 for status in results.status if status == 200)
    figures["durable_equals_accepted"] = measured == accepted
    return figures


def extraction_counts(database: Database, since: datetime, until: datetime) -> ExtractionCounts:
    """Lead extraction's rows created between `since` and `until` (the CPU's window)."""
    window = "created_at >= %s AND created_at < %s"
    extractions, conversations = database.query(
        f"SELECT count(*), count(DISTINCT conversation_id) FROM extractions WHERE {window}", (since, until)
    )[0]
    notifications = database.query(
        f"SELECT kind, count(*) FROM notifications WHERE {window} GROUP BY kind ORDER BY kind", (since, until)
    )
    failing = database.query("SELECT count(*) FROM conversations WHERE extraction_failure IS NOT NULL")[0][0]
    return ExtractionCounts(
        extractions=extractions,
        conversations_read=conversations,
        notifications_by_kind=dict(notifications),
        conversations_failing=failing,
    )


def turns_started(database: Database, since: datetime, until: datetime) -> int:
    """AI turns started between `since` and `until` (the CPU's window)."""
    rows = database.query("SELECT count(*) FROM turns WHERE created_at >= %s AND created_at < %s", (since, until))
    return int(rows[0][0])


def io_counts(client: redis.Redis) -> dict[str, int]:
    """The service's `mcagent:io_counts` hash (IO_COUNTS): what its processes have flushed so far."""
    return {
        name.decode() if isinstance(name, bytes) else name: int(value)
        for name, value in client.hgetall(COUNTS_KEY).items()
    }


def io_counts_flushed(client: redis.Redis) -> dict[str, int]:
    """The hash once every process has flushed what it counted until now (they flush every FLUSH_EVERY_S)."""
    time.sleep(FLUSH_EVERY_S + 0.5)
    return io_counts(client)


def rq_worker_queues(client: redis.Redis) -> dict[int, list[str]]:
    """pid → queues of every RQ worker registered in the run's Redis (RQ's `rq:workers` set and worker hashes)."""
    found: dict[int, list[str]] = {}
    for key in client.smembers("rq:workers"):
        pid, queues = client.hmget(key, ["pid", "queues"])
        if pid:
            found[int(pid)] = (queues.decode() if isinstance(queues, bytes) else queues or "").split(",")
    return found


def machine_info() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        None,
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(int(meminfo[1]) / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "redis_server": _command_output(["redis-server", "--version"]),
    }


def postgres_version(admin_url: str) -> str | None:
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except psycopg.Error:
        return None


def code_info() -> dict[str, Any]:
    return {
        "commit": _command_output(["git", "rev-parse", "--short", "HEAD"]),
        "uncommitted_files": len((_command_output(["git", "status", "--porcelain"]) or "").splitlines()),
    }


def _command_output(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


if __name__ == "__main__":
    sys.exit(main())
