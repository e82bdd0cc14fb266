"""`--gc-pauses`: what the service processes' garbage collections cost during the drive (bench/gc_pauses/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.analysis import ms_summary

#: The folder put first on the services' PYTHONPATH: its `sitecustomize` times every collection.
PROBE_DIR = Path(__file__).resolve().parent / "gc_pauses"


def probe_env(log_path: Path, pythonpath: str) -> dict[str, str]:
    """The services' extra environment: the probe first on the path, then what was there (the repository)."""
    return {"PYTHONPATH": f"{PROBE_DIR}:{pythonpath}", "BENCH_GC_LOG": str(log_path)}


def gc_pause_figures(log_path: Path, start_at: float, drive_end: float, answered: int) -> dict[str, Any]:
    """Full collections and collections of 5 ms or more that began in the drive, and all collections' time.

    Times are CLOCK_MONOTONIC, which every process of the machine shares with the harness's `start_at`."""
    if not log_path.exists():
        return {"error": f"no log at {log_path}: were the services started with the probe?"}
    full: list[float] = []
    slow: list[float] = []
    totals: dict[str, list[tuple[float, int, float]]] = {}
    for line in log_path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        at, pid = float(fields[0]), fields[1]
        if fields[2] == "total":
            totals.setdefault(pid, []).append((at, int(fields[3]), float(fields[4])))
            continue
        ms = float(fields[3])
        if not start_at <= at - ms / 1000 <= drive_end:
            continue
        if fields[2] == "2":
            full.append(ms / 1000)
        if ms >= 5:
            slow.append(ms / 1000)
    in_drive_ms = 0.0
    for series in totals.values():
        before = max((total for total in series if total[0] <= start_at), default=(start_at, 0, 0.0))
        after = max((total for total in series if total[0] <= drive_end), default=before)
        in_drive_ms += after[2] - before[2]
    return {
        "full_collections": len(full),
        "full_collection_ms": ms_summary(full),
        "collections_of_5_ms_or_more": len(slow),
        "longest_ms": round(max(slow, default=0.0) * 1000, 1),
        "collector_ms_in_drive": round(in_drive_ms, 1),
        "collector_ms_per_message": round(in_drive_ms / answered, 3) if answered else None,
    }
