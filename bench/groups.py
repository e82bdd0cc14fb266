"""Several `mcagent worker` supervisors at once, as if on several hosts (`--worker-groups`, `--scaling`).

Worker groups share nothing but PostgreSQL and Redis: scope locks, the due-scope list the drainers take from,
and the sweeper's leader lock. A group is one supervisor with its own environment copy and process tree; its
`--workers` × `--worker-threads` are its own. This module shapes the runs and their figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: What `--scaling` compares with one group of `--workers` × `--worker-threads`: two groups sharing those
#: threads (`split`), two groups of them each (`double`), or both after the one group (`all`).
SCALING_CHOICES = ("split", "double", "all")

#: Why a group's turns are not counted: saying so beats a figure that only looks like one.
TURNS_NOT_COUNTED = (
    "not counted: a turn's row does not say which process ran it and the workers log no line per turn; "
    "the groups' CPU shows how the work spread"
)


@dataclass(frozen=True)
class Shape:
    """How many worker groups, each of `workers` processes × `threads` threads."""

    groups: int
    workers: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.groups}×({self.workers}×{self.threads})"

    @property
    def slug(self) -> str:
        """For a results folder's name."""
        return f"{self.groups}g-{self.workers}x{self.threads}"

    @property
    def total_threads(self) -> int:
        return self.groups * self.workers * self.threads


def scaling_shapes(kind: str, workers: int, threads: int) -> list[Shape]:
    """The runs of `--scaling kind`, one group of `workers` × `threads` first.

    `split` halves the processes when they are even, else the threads, so that the total stays the same;
    ValueError when neither halves."""
    one = Shape(1, workers, threads)
    double = Shape(2, workers, threads)
    if kind == "double":
        return [one, double]
    if workers % 2 == 0:
        split = Shape(2, workers // 2, threads)
    elif threads % 2 == 0:
        split = Shape(2, workers, threads // 2)
    else:
        raise ValueError(
            f"--scaling {kind}: {workers} × {threads} threads cannot be split in two equal groups; "
            "make --workers or --worker-threads even"
        )
    if kind == "split":
        return [one, split]
    if kind == "all":
        return [one, split, double]
    raise ValueError(f"--scaling {kind!r}: expected one of {', '.join(SCALING_CHOICES)}")


def service_names(groups: int) -> list[str]:
    """The supervisors' names (and log files): `workers` alone, `workers-1` … `workers-N` for several."""
    if groups == 1:
        return ["workers"]
    return [f"workers-{number}" for number in range(1, groups + 1)]


def roles_across_groups(per_group: list[dict[str, int]]) -> dict[str, list[int]]:
    """Each role's process in every group, for roles found in every group (`supervisor_roles`): a role
    missing from one group would make its CPU look like that of fewer processes, so it is left out."""
    if not per_group:
        return {}
    names = set(per_group[0]).intersection(*per_group[1:])
    return {name: [roles[name] for roles in per_group] for name in sorted(names)}


def group_split(
    names: list[str],
    *,
    cpu_s: list[float],
    answered: int,
    roles: list[dict[str, int]],
    processes_at_end: list[int],
) -> dict[str, Any]:
    """The report's `worker_group_split`: each group's CPU over the measured window, also per message the
    whole system answered (a group's own messages are not known) and as a share of all groups' CPU."""
    per = max(1, answered)
    total = sum(cpu_s)
    groups = [
        {
            "group": name,
            "cpu_s": round(cpu, 2),
            "cpu_ms_per_message": round(1000 * cpu / per, 3),
            "share_of_workers_cpu_pct": round(100 * cpu / total, 1) if total > 0 else None,
            "roles": group_roles,
            "processes_at_end": alive,
        }
        for name, cpu, group_roles, alive in zip(names, cpu_s, roles, processes_at_end, strict=True)
    ]
    return {"per": "message answered by the whole system", "groups": groups, "turns": TURNS_NOT_COUNTED}


def scaling_comparison(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's `comparison` of a `--scaling` run: answered/s and CPU per message of each shape, and
    their ratio to the first run's (one group). A run without figures (it failed) has no ratios."""
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for run in runs:
        rate = run.get("e2e", {}).get("replies_per_s")
        cpu = run.get("cpu", {}).get("cpu_ms_per_message")
        workers_cpu = run.get("cpu", {}).get("service_cpu_ms_per_message", {}).get("workers")
        correctness = run.get("correctness", {})
        row: dict[str, Any] = {
            "shape": run.get("worker_shape"),
            "replies_per_s": rate,
            "cpu_ms_per_message": cpu,
            "workers_cpu_ms_per_message": workers_cpu,
            "ordering_dup_lost": [
                correctness.get("ordering_violations"),
                correctness.get("duplicate_replies"),
                correctness.get("lost_messages"),
            ],
        }
        if first is None:
            first = row
        elif _positive(rate) and _positive(first["replies_per_s"]):
            row["throughput_ratio_over_one_group"] = round(rate / first["replies_per_s"], 2)
            if _positive(cpu) and _positive(first["cpu_ms_per_message"]):
                row["cpu_ratio_over_one_group"] = round(cpu / first["cpu_ms_per_message"], 2)
        rows.append(row)
    return {"runs": rows}


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and value > 0
