"""`--gc-pauses`: every service process started with this folder first on PYTHONPATH times its garbage collections.

Each full collection (generation 2), and each collection of any generation that took 5 ms or more, is one line of
`$BENCH_GC_LOG`: `monotonic_s pid generation ms collected`. Every five seconds a process also writes its totals:
`monotonic_s pid total count ms`. Lines are short and appended whole, so processes can share the file. Nothing of
this is the service's; the benchmark puts it on the services' path only when asked.
"""

from __future__ import annotations

import gc
import os
import time

_PATH = os.environ.get("BENCH_GC_LOG")
_SLOW_MS = 5.0
_TOTALS_EVERY_S = 5.0
_state = {"started": 0.0, "count": 0, "ms": 0.0, "written": 0.0}


def _write(line: str) -> None:
    assert _PATH is not None
    with open(_PATH, "a") as log:
        log.write(line + "\n")


def _timed(phase: str, info: dict[str, int]) -> None:
    now = time.monotonic()
    if phase == "start":
        _state["started"] = now
        return
    ms = (now - _state["started"]) * 1000
    _state["count"] += 1
    _state["ms"] += ms
    if info["generation"] == 2 or ms >= _SLOW_MS:
        _write(f"{now:.3f} {os.getpid()} {info['generation']} {ms:.2f} {info['collected']}")
    if now - _state["written"] >= _TOTALS_EVERY_S:
        _state["written"] = now
        _write(f"{now:.3f} {os.getpid()} total {_state['count']} {_state['ms']:.1f}")


if _PATH:
    gc.callbacks.append(_timed)
