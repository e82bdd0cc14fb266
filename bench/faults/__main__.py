"""`python -m bench.faults`: the whole system under load, broken on purpose, one scenario after the other.

Each scenario starts the system afresh (database, Redis, stand-ins, gunicorn, `mcagent worker`), drives signed
webhooks at a moderate rate, breaks one thing mid-load (and heals it where it heals), waits for the backlog to
drain and counts: messages acknowledged, answered, lost, duplicated, out of order, AI calls per turn, recovery
time. Writes `report.json` and `report.md` to the run's folder, prints the table, and exits 1 if any scenario
lost, duplicated or reordered a message. See bench/README.md, "Faults".
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.faults.figures import markdown
from bench.faults.postgres import PrivatePostgres
from bench.faults.rig import REDELIVERY, TIMINGS, Options, run_scenario
from bench.faults.scenarios import SCENARIOS
from bench.run import RESULTS, code_info, machine_info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [scenario.name for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--only", action="append", choices=names, help="run this scenario (repeat); default: all")
    parser.add_argument("--rate", type=float, default=25.0, help="messages/s offered")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--numbers", type=int, default=10, help="business numbers (one tenant and agent each)")
    parser.add_argument("--burst-fraction", type=float, default=0.1, help="share of events that are 2–4 messages")
    parser.add_argument("--ai-latency-ms", type=int, default=400, help="stand-in OpenAI latency per response")
    parser.add_argument("--fault-at", type=float, default=12.0, help="seconds into the load when the fault starts")
    parser.add_argument("--after-fault", type=float, default=25.0, help="seconds of load after the fault ends")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the last answers")
    parser.add_argument("--senders", type=int, default=32, help="load-generator threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="folder for the reports and logs (default: bench/results/…)")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = datetime.now(UTC)
    began = time.monotonic()
    run_dir = args.out or RESULTS / f"{started.strftime('%Y%m%d-%H%M%S')}-faults"
    run_dir.mkdir(parents=True, exist_ok=True)
    options = Options(
        rate=args.rate,
        customers=args.customers,
        numbers=args.numbers,
        burst_fraction=args.burst_fraction,
        ai_latency_ms=args.ai_latency_ms,
        fault_at_s=args.fault_at,
        after_fault_s=args.after_fault,
        drain_timeout_s=args.drain_timeout,
        senders=args.senders,
        seed=args.seed,
    )
    scenarios = [scenario for scenario in SCENARIOS if not args.only or scenario.name in args.only]
    postgres = PrivatePostgres()
    report: dict[str, Any] = {
        "harness": "mcagent under load with faults injected",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "bench.faults", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "code": code_info(),
        "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "service_settings_changed": TIMINGS,
        "redelivery": vars(REDELIVERY),
        "load_description": (
            f"{options.rate:g} messages/s over {options.customers} customers on {options.numbers} numbers "
            f"({options.burst_fraction:.0%} of events bursts of 2–4), stand-in AI latency {options.ai_latency_ms} ms, "
            f"fault at {options.fault_at_s:g} s, {options.after_fault_s:g} s of load after it ends; "
            + ", ".join(f"{key}={value}" for key, value in TIMINGS.items())
        ),
        "scenarios": [],
    }
    exit_code = 0
    try:
        postgres.create()
        report["machine"]["postgres"] = postgres.version()
        for scenario in scenarios:
            scenario_began = time.monotonic()
            run = run_scenario(scenario, options, postgres, run_dir)
            run["seconds"] = round(time.monotonic() - scenario_began, 1)
            report["scenarios"].append(run)
            print(f"{scenario.name}: {_verdict(run)} ({run['seconds']:.0f} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        report["interrupted"] = True
        exit_code = 130
    finally:
        postgres.remove(keep_log_as=run_dir / "postgres.log")
    report["total_seconds"] = round(time.monotonic() - began, 1)
    table = markdown(report)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(table)
    print(table)
    print(f"reports and logs: {run_dir}; {report['total_seconds']:.0f} s in all")
    failed = [run["scenario"] for run in report["scenarios"] if run["problems"]]
    if failed and not exit_code:
        print(f"FAILED: {', '.join(failed)}")
        exit_code = 1
    return exit_code


def _verdict(run: dict[str, Any]) -> str:
    if not run["problems"]:
        recovered = run["recovery"]["recovered_after_s"]
        return f"pass, recovered after {recovered} s"
    return "FAIL: " + "; ".join(run["problems"])


if __name__ == "__main__":
    sys.exit(main())
