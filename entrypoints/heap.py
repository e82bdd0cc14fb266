"""The garbage collector in a long-lived process: what the process built to live with is set aside."""

from __future__ import annotations

import gc

#: Allocations (net of frees) between two collections of the youngest generation; Python's default is 700. A
#: worker's hundred turns in flight keep thousands of young objects alive, and every young collection walks
#: them again. What a message makes is freed by reference counting (no message leaves a cycle: see the
#: tests using tests/support/garbage.py), so collecting less often leaves no more behind. At 100 msg/s the
#: collector's time in the drive 1,907 → 1,023 ms (bench/README.md, "The garbage collector's pauses").
YOUNG_THRESHOLD = 10_000


def set_aside_startup_objects() -> None:
    """Move every object alive now out of the collector's sight (`gc.freeze`), once a process has built what
    it keeps for its life: the modules it imported, its container, its pools.

    The collector's full passes walk every tracked object. In a worker those are mostly the SDKs' modules and
    classes, which never become garbage, and a full pass over them took 96–238 ms while every thread of
    the process waited (bench/README.md, "The garbage collector's pauses"). What is set aside is never
    collected, so the garbage already there is collected first. Then the youngest generation is collected
    less often (`YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
