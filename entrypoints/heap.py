"""The garbage collector in a long-lived process: what the process built to live with is set aside."""

from __future__ import annotations

import gc


def set_aside_startup_objects() -> None:
    """Move every object alive now out of the collector's sight (`gc.freeze`), once a process has built what
    it keeps for its life: the modules it imported, its container, its pools.

    The collector's full passes walk every tracked object. In a worker those are mostly the SDKs' modules and
    classes, which never become garbage, and a full pass over them took 100–300 ms while every thread of
    the process waited (bench/README.md, "The garbage collector's pauses"). What is set aside is never
    collected, so the garbage already there is collected first."""
    gc.collect()
    gc.freeze()
