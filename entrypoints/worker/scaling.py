"""How many worker processes the pool should have, from the queue.

A ConcurrentWorker takes a job only while one of its threads is free, so jobs wait in the queue
only when every thread of every process is busy. The oldest waiting job's age is therefore the
signal to grow; a queue that stayed empty for a while is the signal to shrink.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from attrs import define, field


@define
class ScalingPolicy:
    minimum: int
    maximum: int
    threads_per_process: int
    grow_after_s: float  # the oldest waiting job is at least this old
    shrink_after_s: float  # the queue has been empty this long
    clock: Callable[[], float] = time.monotonic
    _empty_since: float | None = field(default=None, init=False)

    def decide(self, current: int, depth: int, oldest_age_s: float | None) -> int:
        """The number of processes wanted, given the current number and the queue."""
        now = self.clock()
        if depth == 0:
            self._empty_since = self._empty_since if self._empty_since is not None else now
        else:
            self._empty_since = None
        wanted = current
        if depth > 0 and oldest_age_s is not None and oldest_age_s >= self.grow_after_s:
            # Enough processes at once for what waits, rather than one per decision.
            wanted = current + max(1, math.ceil(depth / self.threads_per_process))
        elif self._empty_since is not None and now - self._empty_since >= self.shrink_after_s:
            wanted = current - 1
            self._empty_since = now  # one step down per quiet period
        return max(self.minimum, min(self.maximum, wanted))
