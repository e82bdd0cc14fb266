"""How the kernel schedules the workers' processes: as batch work, which does not preempt on waking.

A worker's turn waits on a socket some 15 times (PostgreSQL, Redis, OpenAI, the Graph API), and at 100 msg/s
the kernel switched its threads 21-50 times per message, a third of those involuntarily: a thread woken by
its socket preempted another that was running, often only to wait for the GIL that one held. Each switch
costs more than its own work here, because the work that follows runs on caches and predictors the other
one used (bench/README.md, "What a message costs when it arrives alone"). Under `SCHED_BATCH` a woken thread
waits for the running one's time slice instead of preempting it. No privilege is needed, and the web
process keeps the normal policy, so a webhook still preempts a worker when it arrives.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def schedule_as_batch() -> bool:
    """Put the calling thread, and every thread and process it starts from now on, under `SCHED_BATCH`.

    Returns False, having logged why, where the platform has no such policy or refuses it (a seccomp
    profile, say): the workers then run as before."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_BATCH"):
        log.info("batch_scheduling_unavailable", extra={"reason": "this platform has no SCHED_BATCH"})
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as error:
        log.warning("batch_scheduling_refused", extra={"reason": str(error)})
        return False
    return True
