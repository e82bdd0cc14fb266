"""`--profile`: py-spy on the web and worker process trees for part of the drive, and where the time went."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procstats import ProcessMonitor


class Profiler:
    """Starts `py-spy record --subprocesses` on each target after a delay; summarises the speedscope files."""

    def __init__(self, targets: dict[str, int], out_dir: Path, *, seconds: float, rate: int) -> None:
        self.targets = targets
        self.out_dir = out_dir
        self.seconds = seconds
        self.rate = rate
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.problems: list[str] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def start_after(self, delay_s: float, monitor: ProcessMonitor) -> None:
        executable = shutil.which("py-spy")
        if executable is None:
            self.problems.append("py-spy is not installed: pip install -e '.[bench]'")
            return

        def launch() -> None:
            with self._lock:
                for name, pid in self.targets.items():
                    path = self.out_dir / f"{name}.speedscope.json"
                    argv = [
                        executable,
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--nonblocking",
                        # Only threads holding the GIL: where the CPU goes, not where threads wait.
                        "--gil",
                        "--rate",
                        str(self.rate),
                        "--duration",
                        str(max(1, round(self.seconds))),
                        "--format",
                        "speedscope",
                        "--output",
                        str(path),
                    ]
                    log = (self.out_dir / "logs" / f"py-spy-{name}.log").open("wb")
                    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
                    self.processes[name] = process
                    monitor.extra_harness_pids.append(process.pid)

        self._timer = threading.Timer(delay_s, launch)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            for process in self.processes.values():
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()

    def finish(self, timeout_s: float = 60) -> dict[str, Any]:
        """Wait (bounded) for the recordings to end; return the files and the top functions of each."""
        with self._lock:
            processes = dict(self.processes)
        summary: dict[str, Any] = {"problems": self.problems, "files": {}, "top": {}}
        for name, process in processes.items():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.terminate()
                summary["problems"].append(f"py-spy on {name} did not finish in {timeout_s} s")
            path = self.out_dir / f"{name}.speedscope.json"
            if path.exists():
                summary["files"][name] = str(path)
                summary["top"][name] = top_functions(path)
                # `workers-2` is the second worker group (`--worker-groups`): the workers' steps.
                steps = STEPS.get(name.partition("-")[0])
                if steps is not None:
                    summary.setdefault("by_step_pct", {})[name] = step_shares(path, steps)
            else:
                summary["problems"].append(f"no profile for {name} (see {self.out_dir / 'logs'})")
        return summary


#: What a sample was doing, by the first marker found in its stack (function names and file paths),
#: checked in this order. Samples are taken only from threads holding the GIL (`--gil`): CPU, not waiting.
STEPS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "workers": [
        ("openai: conversations.create", ("OpenAIResponder.start_conversation",)),
        ("openai: responses", ("OpenAIResponder.respond",)),
        ("graph: read receipt", ("ReplyDelivery.mark_read",)),
        ("graph: send reply", ("ReplyDelivery.send",)),
        ("postgres (psycopg, pool)", ("PostgresUnitOfWork", "/psycopg")),
        ("redis (lock, caches, waiting mark)", ("RedisLocks", "_RedisJsonCache", "RqJobQueue.taken")),
        ("due scopes (taking one, queueing drainers)", ("RqJobQueue.take",)),
        ("use cases, domain, container", ("Job.perform",)),
        ("rq bookkeeping (dequeue, registries, heartbeats)", ("/rq/", "rq_worker.py")),
    ],
    "web": [
        ("making the scope due (and queueing a drainer)", ("RqJobQueue.enqueue_scope",)),
        ("route lookup (redis cache)", ("ChannelRoutes.find",)),
        ("postgres: store the message", ("PostgresUnitOfWork", "/psycopg")),
        ("signature, JSON, payload parsing", ("verify_signature", "parse_delivery", "/json/")),
        ("flask and werkzeug", ("/flask/", "/werkzeug/")),
        ("gunicorn (gthread)", ("/gunicorn/",)),
    ],
}


def step_shares(path: Path, steps: list[tuple[str, tuple[str, ...]]]) -> list[list[Any]]:
    """Share of samples per step of the pipeline (`STEPS`), largest first; `other` for the rest."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    labels = [f"{frame['name']}\n{frame.get('file') or ''}" for frame in frames]
    counts: Counter[str] = Counter()
    total = 0.0
    for profile in data.get("profiles", []):
        for stack, weight in zip(profile.get("samples", []), profile.get("weights", []), strict=False):
            total += weight
            text = "\n".join(labels[index] for index in stack)
            step = next((name for name, markers in steps if any(marker in text for marker in markers)), "other")
            counts[step] += weight
    return [[name, round(100 * weight / total, 1)] for name, weight in counts.most_common()] if total else []


def top_functions(path: Path, count: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of samples per function, over every process and thread of the profile."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    # Without line numbers: one entry per function, however many lines of it were sampled.
    names = [f"{frame['name']} ({Path(frame.get('file') or '?').name})" for frame in frames]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = 0.0
    for profile in data.get("profiles", []):
        for stack, weight in zip(profile.get("samples", []), profile.get("weights", []), strict=False):
            if not stack:
                continue
            total += weight
            own[names[stack[-1]]] += weight
            modules[_module_of(frames[stack[-1]].get("file") or "?")] += weight
            for name in {names[index] for index in stack}:
                if not name.startswith(("process ", "Thread")):  # py-spy's pseudo-frames and thread plumbing
                    inclusive[name] += weight
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * weight / total, 1)] for name, weight in counter.most_common(count)]

    return {
        "samples": total,
        "self_pct": shares(own),
        "inclusive_pct": shares(inclusive),
        "self_pct_by_package": shares(modules),
    }


def _module_of(file: str) -> str:
    parts = Path(file).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    for marker in ("domain", "application", "adapters", "entrypoints"):
        if marker in parts:
            return marker
    if "python3.11" in parts or any(part.startswith("python3") for part in parts):
        return "stdlib"
    return Path(file).name
