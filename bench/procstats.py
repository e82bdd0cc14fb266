"""CPU and memory of process trees, read from /proc (Linux).

Two CPU counts are kept for the service trees, so that a process that died between samples is not lost:

- *exact* (`tree_total`): for every process alive in the tree, utime+stime+cutime+cstime. A child that died
  and was reaped by its parent (gunicorn master, the worker supervisor, RQ's fork-per-job parent) has its
  whole CPU time added to the parent's cutime/cstime by the kernel, so the sum over the living covers the
  dead as well. The difference between two snapshots is the CPU spent in between.
- *sampled* (`last_seen`): utime+stime of every (pid, start time) ever seen, the last value kept. It misses
  what a process spent after its last sample; it is reported as a cross-check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    own_ticks: int  # utime + stime
    children_ticks: int  # cutime + cstime (reaped descendants)
    start: int  # start time in ticks since boot: (pid, start) names a process uniquely
    rss_bytes: int
    system_ticks: int  # stime + cstime: the part of own and children ticks spent in the kernel

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start)


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    try:
        return ProcStat(
            pid=pid,
            comm=comm,
            ppid=int(fields[1]),
            own_ticks=int(fields[11]) + int(fields[12]),
            children_ticks=int(fields[13]) + int(fields[14]),
            start=int(fields[19]),
            rss_bytes=int(fields[21]) * PAGE_SIZE,
            system_ticks=int(fields[12]) + int(fields[14]),
        )
    except (IndexError, ValueError):
        return None


def all_stats() -> dict[int, ProcStat]:
    found: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                found[stat.pid] = stat
    return found


def descendants(roots: Iterable[int], stats: dict[int, ProcStat]) -> set[int]:
    """The roots (when alive) and every process below them."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: set[int] = set()
    todo = [root for root in roots if root in stats]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def children_by_start(pid: int, stats: dict[int, ProcStat]) -> list[int]:
    """The direct children of `pid`, oldest first (the order a supervisor started them in)."""
    return [stat.pid for stat in sorted((s for s in stats.values() if s.ppid == pid), key=lambda s: s.start)]


def supervisor_roles(children: list[int], rq_queues: dict[int, list[str]], background_queue: str) -> dict[str, int]:
    """Which of the worker supervisor's children is the background worker and which the sweeper.

    `rq_queues` is every registered RQ worker's pid and queues. The background worker is the child serving
    `background_queue`; the sweeper is the one child that is no RQ worker at all. A role that does not
    come out as exactly one process is left out, so a process is never counted under a wrong name."""
    background = [pid for pid in children if background_queue in rq_queues.get(pid, [])]
    sweeper = [pid for pid in children if pid not in rq_queues]
    roles: dict[str, int] = {}
    if len(background) == 1:
        roles["background"] = background[0]
    if len(sweeper) == 1:
        roles["sweeper"] = sweeper[0]
    return roles


def pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, stolen) CPU ticks of the whole machine since boot."""
    with open("/proc/stat") as handle:
        return cpu_ticks(handle.readline())


def cpu_ticks(line: str) -> tuple[int, int, int]:
    """(busy, total, stolen) from /proc/stat's `cpu` line: user nice system idle iowait irq softirq steal ….
    Stolen ticks (the hypervisor ran something else while this machine wanted the CPU) count as busy."""
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total, values[7] if len(values) > 7 else 0


def speed_probe_ms(rounds: int = 5) -> float:
    """CPU milliseconds a fixed piece of pure-Python work takes here (the best of `rounds`).

    The same code on the same machine kind has measured two thirds of its usual CPU per message in one run
    and not in the next (bench/README.md, "A turn read the whole messages table"): the host's other work
    shows up as slower CPU, not as busy time. Taken before and after a run, with nothing of the run going,
    this says how fast the machine was: compare runs only at a similar figure."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        _probe_work()
        best = min(best, time.process_time() - began)
    return round(best * 1000, 2)


def _probe_work() -> None:
    # Interpreter-bound work of the kind the service does: small dicts, strings, loops.
    for n in range(16000):
        body = "hello there " * 3
        entry = {"id": f"wamid.{n}", "from": str(15550000000 + n), "body": body}
        body.split()
        sorted(entry)


# What the wake-up probe times: a webhook's kind of work, about 0.1 ms of it, over many modules' code (a
# signature, JSON both ways, a regex, dates, quoting). Work over little code (the speed probe's) pays far less
# after a sleep: about 2 times its cost against 4-7 times for this, on the same machine. Written out here rather
# than calling the webhook's own parsing (`bench.parse` times that): like the speed probe, it must be the same
# work in every commit, so that runs of two commits can be compared by it.
_SIGNED = json.dumps(
    {
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "123", "display_phone_number": "15550001"},
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551234"}],
                            "messages": [
                                {
                                    "from": "15551234",
                                    "id": f"wamid.HBgM{n}",
                                    "timestamp": "1733300000",
                                    "type": "text",
                                    "text": {"body": f"Hello there {n}"},
                                }
                                for n in range(2)
                            ],
                        },
                    }
                ],
            }
        ]
    }
).encode()
_MESSAGE_ID = re.compile(r"wamid\.(\w+)")


def _request_like_work() -> None:
    for _ in range(2):
        hmac.compare_digest(hmac.new(b"secret", _SIGNED, hashlib.sha256).hexdigest(), "0" * 64)
        rows = []
        for entry in json.loads(_SIGNED)["entry"]:
            for change in entry["changes"]:
                for message in change["value"]["messages"]:
                    matched = _MESSAGE_ID.match(message["id"])
                    rows.append(
                        {
                            "id": matched.group(1) if matched else None,
                            "at": datetime.fromtimestamp(int(message["timestamp"]), UTC).isoformat(),
                            "text": message["text"]["body"].strip().lower(),
                            "to": quote(message["from"]),
                        }
                    )
        json.dumps(rows, sort_keys=True)
        formatdate(usegmt=True)


def wakeup_probe(calls: int = 100, pause_s: float = 0.01) -> dict[str, float]:
    """What the same small piece of work costs straight after the last one, and after a 10 ms sleep.

    At 100 messages a second each service process sleeps between messages, and then runs its next one on
    caches, branch predictors and a core that other processes used meanwhile. Here that made a webhook's kind
    of work cost 4-7 times as much as back to back (bench/README.md, "What a message costs when it arrives
    alone"): at a modest rate, much of the CPU per message is the machine's cost of waking, which is why each
    wait saved on a message's path (a round trip, a hand-off between threads) counts for more than its own
    work. Medians of `calls` timings each; `ratio` is `after_sleep_us` over `back_to_back_us`."""

    def timed(pause: float) -> float:
        _request_like_work()
        spent = []
        for _ in range(calls):
            if pause:
                time.sleep(pause)
            began = time.process_time()
            _request_like_work()
            spent.append(time.process_time() - began)
        return statistics.median(spent) * 1e6

    back_to_back = timed(0.0)
    after_sleep = timed(pause_s)
    return {
        "back_to_back_us": round(back_to_back, 1),
        "after_sleep_us": round(after_sleep, 1),
        "ratio": round(after_sleep / back_to_back, 2) if back_to_back else 0.0,
    }


def context_switches(pid: int) -> dict[int, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each thread of `pid` so far, by thread id.

    A voluntary switch is the thread waiting (for a socket, a lock, a sleep); each one is also a wake-up later.
    A thread that ended is no longer listed: counts taken apart in time miss what it did in between."""
    counts: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return counts
    for tid in tids:
        voluntary = involuntary = 0
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as handle:
                for line in handle:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary = int(line.split()[1])
        except (OSError, ValueError):
            continue
        counts[int(tid)] = (voluntary, involuntary)
    return counts


def switches_between(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Switches made between two `context_switches` readings (of any number of processes, merged): threads
    born in between count from zero, threads that ended in between are missed."""
    voluntary = involuntary = 0
    for tid, (v, i) in after.items():
        v0, i0 = before.get(tid, (0, 0))
        voluntary += max(v - v0, 0)
        involuntary += max(i - i0, 0)
    return voluntary, involuntary


def _threads_of(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    return {tid: counts for pid in pids for tid, counts in context_switches(pid).items()}


@dataclass
class Group:
    """One accounted set of processes: the service, redis, postgres, the harness."""

    name: str
    last_seen: dict[tuple[int, int], int] = field(default_factory=dict)  # key -> own ticks (sampled)
    baseline_seen: dict[tuple[int, int], int] = field(default_factory=dict)
    tree_total: int = 0  # own + children ticks of the living, at the last sample
    baseline_tree_total: int = 0
    tree_system: int = 0  # the kernel's part of tree_total
    baseline_tree_system: int = 0
    pids: tuple[int, ...] = ()  # the processes seen at the last sample
    alive: int = 0
    peak_rss: int = 0
    peak_pss: int = 0
    last_rss: int = 0
    last_pss: int = 0

    def observe(self, stats: list[ProcStat], *, with_pss: bool) -> None:
        total = 0
        system = 0
        rss = 0
        for stat in stats:
            self.last_seen[stat.key] = stat.own_ticks
            total += stat.own_ticks + stat.children_ticks
            system += stat.system_ticks
            rss += stat.rss_bytes
        self.tree_total = total
        self.tree_system = system
        self.pids = tuple(stat.pid for stat in stats)
        self.alive = len(stats)
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        if with_pss:
            pss = sum(value for stat in stats if (value := pss_bytes(stat.pid)) is not None)
            self.last_pss = pss
            self.peak_pss = max(self.peak_pss, pss)

    def mark_baseline(self) -> None:
        self.baseline_seen = dict(self.last_seen)
        self.baseline_tree_total = self.tree_total
        self.baseline_tree_system = self.tree_system
        self.peak_rss = self.last_rss
        self.peak_pss = self.last_pss

    def cpu_s(self) -> float:
        return (self.tree_total - self.baseline_tree_total) / CLK_TCK

    def system_s(self) -> float:
        """The part of `cpu_s` spent in the kernel (system calls, wake-ups, the network stack)."""
        return (self.tree_system - self.baseline_tree_system) / CLK_TCK

    def cpu_sampled_s(self) -> float:
        ticks = sum(value - self.baseline_seen.get(key, 0) for key, value in self.last_seen.items())
        return ticks / CLK_TCK


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    service_cpu_s: float
    queue_depth: int | None
    supervisor_children: int
    worker_tree_processes: int
    web_processes: int
    service_rss_mb: float
    postgres_backends: int


class ProcessMonitor:
    """Samples the process trees every `interval_s` on a thread of its own, until stopped."""

    def __init__(
        self,
        *,
        service_roots: list[int],
        supervisor_pids: list[int],
        web_pid: int | None,
        redis_pid: int | None,
        harness_pids: list[int],
        database_name: str,
        queue_depth: object = None,
        interval_s: float = 0.5,
        pss_every: int = 4,
    ) -> None:
        self.service_roots = service_roots
        self.supervisor_pids = supervisor_pids
        self.web_pid = web_pid
        self.redis_pid = redis_pid
        self.harness_pids = harness_pids
        self.database_name = database_name
        self._queue_depth = queue_depth  # a callable returning int, or None
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.service = Group("service")
        self.web = Group("web")  # gunicorn and its workers: part of `service`
        self.workers = Group("workers")  # every `mcagent worker` and its pool: part of `service`
        # Each supervisor's tree apart (`--worker-groups`), in the order of `supervisor_pids`: parts of `workers`.
        self.worker_groups = [Group(f"workers-{number}") for number in range(1, len(supervisor_pids) + 1)]
        self.redis = Group("redis")
        self.postgres = Group("postgres")  # our database's backends + the cluster's own processes
        self.postgres_all = Group("postgres_all")  # every postgres process (other databases too)
        self.harness = Group("harness")
        # Processes of the worker trees followed on their own (`follow`), by role: part of `workers`.
        self.roles: dict[str, Group] = {}
        self.role_pids: dict[str, list[int]] = {}
        self._role_pids_alive: dict[str, bool] = {}
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0
        self._machine_baseline = machine_ticks()
        self._machine_last = self._machine_baseline
        self.extra_harness_pids: list[int] = []
        self._postgres_kind: dict[tuple[int, int], str] = {}
        self.peak_postgres_backends = 0
        self._switches_baseline: dict[str, dict[int, tuple[int, int]]] = {}

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="process-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as error:  # a bad sample must not end the monitoring
                if len(self.errors) < 20:
                    self.errors.append(repr(error))

    def follow(self, role_pids: dict[str, list[int]]) -> None:
        """Account the processes of each role (one per worker group, and their descendants) apart as well,
        from the next sample on; call before `mark_baseline`. A followed process that dies takes its CPU out
        of its role's count (it goes to its supervisor's): `roles_whole_window` says whether that happened."""
        with self._lock:
            self.role_pids = {name: list(pids) for name, pids in role_pids.items()}
            self.roles = {name: Group(name) for name in role_pids}
            self._role_pids_alive = {name: True for name in role_pids}
        self.sample()

    def roles_whole_window(self) -> bool:
        """Every followed process was alive at every sample since `follow`."""
        return all(self._role_pids_alive.values())

    def mark_baseline(self) -> None:
        with self._lock:
            for group in (
                self.service,
                self.web,
                self.workers,
                self.redis,
                self.postgres,
                self.postgres_all,
                self.harness,
                *self.worker_groups,
                *self.roles.values(),
            ):
                group.mark_baseline()
            self._machine_baseline = self._machine_last
            self._switches_baseline = {group.name: _threads_of(group.pids) for group in (self.web, self.workers)}

    def switches_since_baseline(self, group: Group) -> tuple[int, int]:
        """(voluntary, involuntary) context switches of the web's or the workers' threads since the baseline,
        read now: threads that ended meanwhile are missed (the service's are long-lived: gunicorn's, the
        workers' pools)."""
        return switches_between(self._switches_baseline.get(group.name, {}), _threads_of(group.pids))

    def sample(self) -> None:
        stats = all_stats()
        with_pss = self._count % self.pss_every == 0
        self._count += 1
        service_pids = descendants(self.service_roots, stats)
        group_pids = [descendants([pid], stats) for pid in self.supervisor_pids]
        worker_pids = set().union(*group_pids)
        web_pids = descendants([self.web_pid], stats) if self.web_pid else set()
        supervisor_children = sum(1 for s in stats.values() if s.ppid in self.supervisor_pids)
        postgres_ours: list[ProcStat] = []
        postgres_all: list[ProcStat] = []
        backends = 0
        for stat in stats.values():
            if stat.comm != "postgres":
                continue
            postgres_all.append(stat)
            kind = self._postgres_kind.get(stat.key)
            if kind is None:
                kind = self._classify(cmdline(stat.pid))
                if kind != "cluster":  # a backend not yet titled looks like the postmaster: look again
                    self._postgres_kind[stat.key] = kind
            if kind == "ours":
                backends += 1
            if kind != "other":
                postgres_ours.append(stat)
        harness = [stats[pid] for pid in (*self.harness_pids, *self.extra_harness_pids) if pid in stats]
        queue_depth = None
        if callable(self._queue_depth):
            try:
                queue_depth = int(self._queue_depth())
            except Exception:
                queue_depth = None
        with self._lock:
            self.service.observe([stats[pid] for pid in service_pids], with_pss=with_pss)
            self.web.observe([stats[pid] for pid in web_pids], with_pss=False)
            self.workers.observe([stats[pid] for pid in worker_pids], with_pss=False)
            for group, pids in zip(self.worker_groups, group_pids, strict=True):
                group.observe([stats[pid] for pid in pids], with_pss=False)
            self.redis.observe([stats[self.redis_pid]] if self.redis_pid in stats else [], with_pss=with_pss)
            self.postgres.observe(postgres_ours, with_pss=False)
            self.postgres_all.observe(postgres_all, with_pss=False)
            self.harness.observe(harness, with_pss=False)
            for name, group in self.roles.items():
                group.observe([stats[pid] for pid in descendants(self.role_pids[name], stats)], with_pss=False)
                if any(pid not in stats for pid in self.role_pids[name]):
                    self._role_pids_alive[name] = False
            self._machine_last = machine_ticks()
            self.peak_postgres_backends = max(self.peak_postgres_backends, backends)
            self.samples.append(
                Sample(
                    at=time.monotonic(),
                    service_cpu_s=self.service.tree_total / CLK_TCK,
                    queue_depth=queue_depth,
                    supervisor_children=supervisor_children,
                    worker_tree_processes=len(worker_pids),
                    web_processes=len(web_pids),
                    service_rss_mb=self.service.last_rss / 2**20,
                    postgres_backends=backends,
                )
            )

    def _classify(self, title: str) -> str:
        """A client backend's title is "postgres: <cluster>: <user> <database> <host(port)> <state>"."""
        if f" {self.database_name} " in title or title.endswith(f" {self.database_name}"):
            return "ours"
        if ("(" in title and ")" in title) or " [local] " in title:
            return "other"
        return "cluster"  # the postmaster and the cluster's own processes (checkpointer, walwriter, …)

    def machine_busy(self) -> tuple[float, float]:
        """(busy CPU seconds, elapsed CPU seconds over all cores) since the baseline."""
        busy = (self._machine_last[0] - self._machine_baseline[0]) / CLK_TCK
        total = (self._machine_last[1] - self._machine_baseline[1]) / CLK_TCK
        return busy, total

    def machine_stolen_s(self) -> float:
        """CPU seconds the hypervisor took from this machine since the baseline (counted in busy)."""
        return (self._machine_last[2] - self._machine_baseline[2]) / CLK_TCK
