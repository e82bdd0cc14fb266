"""The faults: what each scenario breaks mid-load, and how it heals.

A fault starts `--fault-at` seconds into the drive. One that heals (Redis or PostgreSQL back, OpenAI back,
the failures or the delay switched off) ends `lasts_s` later, when the broken part answers again; a one-shot
fault (a kill) ends when it starts. Recovery is counted from the end.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.faults.upstreams import GRAPH_SOMETIMES, OPENAI_SOMETIMES, AtRandom
from tests.support.processes import wait_for

if TYPE_CHECKING:
    from bench.faults.rig import Rig

Action = Callable[["Rig"], dict[str, Any]]

OPENAI_FAILURE_RATE = 0.08
GRAPH_FAILURE_RATE = 0.05
#: Added to each direction of the webhook, OpenAI and Graph API connections: 200 ms per round trip.
ONE_WAY_DELAY_S = 0.1


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str  # what breaks, as the report's table says it
    lasts_s: float = 0.0  # 0: a one-shot fault
    inject: Action | None = None
    heal: Action | None = None
    #: The webhook, OpenAI and the Graph API reached through delaying proxies (delay 0 outside the fault).
    delayed_network: bool = False


def kill_worker_processes(rig: Rig) -> dict[str, Any]:
    """SIGKILL every process `mcagent worker` supervises (the RQ workers and the sweeper), mid-job; then wait
    for the supervisor to have started as many again."""
    killed = rig.supervised_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()

    def replaced() -> bool:
        running = set(rig.supervised_pids())
        return len(running) >= len(killed) and not running & set(killed)

    wait_for(replaced, timeout=60, what="the worker supervisor to replace the killed processes", every=0.1)
    return {"killed_pids": killed, "all_replaced_after_s": round(time.monotonic() - started, 2)}


def kill_redis(rig: Rig) -> dict[str, Any]:
    return {"killed_pid": rig.redis.kill()}


def restart_redis_empty(rig: Rig) -> dict[str, Any]:
    return {"pid": rig.redis.start()}


def crash_postgres(rig: Rig) -> dict[str, Any]:
    rig.postgres.stop("immediate")
    return {"shutdown": "immediate"}


def start_postgres(rig: Rig) -> dict[str, Any]:
    rig.postgres.start()
    return {}


def openai_down(rig: Rig) -> dict[str, Any]:
    rig.openai.go_down()
    return {}


def openai_back(rig: Rig) -> dict[str, Any]:
    rig.openai.come_back()
    return {}


def openai_failing(rig: Rig) -> dict[str, Any]:
    rig.openai.fail_at_random(AtRandom(OPENAI_FAILURE_RATE, OPENAI_SOMETIMES))
    return {}


def openai_not_failing(rig: Rig) -> dict[str, Any]:
    rig.openai.fail_at_random(None)
    return {}


def graph_failing(rig: Rig) -> dict[str, Any]:
    rig.graph.fail_at_random(AtRandom(GRAPH_FAILURE_RATE, GRAPH_SOMETIMES))
    return {}


def graph_not_failing(rig: Rig) -> dict[str, Any]:
    rig.graph.fail_at_random(None)
    return {}


def delay_network(rig: Rig) -> dict[str, Any]:
    assert rig.proxies is not None
    rig.proxies.delay_s = ONE_WAY_DELAY_S
    return {"one_way_delay_s": ONE_WAY_DELAY_S}


def undelay_network(rig: Rig) -> dict[str, Any]:
    assert rig.proxies is not None
    rig.proxies.delay_s = 0.0
    return {}


SCENARIOS = (
    Scenario("baseline", "none: the same load, nothing broken"),
    Scenario(
        "worker-kill",
        "every process under `mcagent worker` (RQ workers, sweeper) SIGKILLed once",
        inject=kill_worker_processes,
    ),
    Scenario("redis-restart", "redis-server SIGKILLed, back empty 5 s later", 5, kill_redis, restart_redis_empty),
    Scenario(
        "postgres-restart",
        "PostgreSQL crashed (immediate shutdown), back 5 s later",
        5,
        crash_postgres,
        start_postgres,
    ),
    Scenario("openai-down", "OpenAI answers 503 to every call for 60 s", 60, openai_down, openai_back),
    Scenario(
        "openai-errors",
        f"{OPENAI_FAILURE_RATE:.0%} of OpenAI calls fail for 20 s: 429 (retry-after 1 s), 500 (half of them after "
        "the turn landed), conversation_locked",
        20,
        openai_failing,
        openai_not_failing,
    ),
    Scenario(
        "graph-errors",
        f"{GRAPH_FAILURE_RATE:.0%} of Graph API calls fail for 20 s: 500 (code 131000), 429 (code 130429)",
        20,
        graph_failing,
        graph_not_failing,
    ),
    Scenario(
        "network-delay",
        f"+{2 * ONE_WAY_DELAY_S * 1000:.0f} ms per round trip for 20 s on the webhook, OpenAI and Graph API "
        "connections",
        20,
        delay_network,
        undelay_network,
        delayed_network=True,
    ),
)
