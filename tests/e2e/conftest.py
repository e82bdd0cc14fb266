"""End-to-end fixtures: a private Redis, the stand-ins, and a `System` to start per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import PrivateRedis, System
from tests.support.standin_graph import StandInGraph
from tests.support.standin_openai import StandInOpenAI


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    try:
        redis.start()
    except (OSError, TimeoutError) as error:
        pytest.fail(f"redis-server could not be started for the end-to-end tests: {error}", pytrace=False)
    yield redis
    redis.stop()


@pytest.fixture
def openai_standin() -> Iterator[StandInOpenAI]:
    with StandInOpenAI(latency_ms=20) as server:
        yield server


@pytest.fixture
def graph_standin() -> Iterator[StandInGraph]:
    with StandInGraph() as server:
        yield server


@pytest.fixture
def make_system(
    clean_database: str,
    private_redis: PrivateRedis,
    openai_standin: StandInOpenAI,
    graph_standin: StandInGraph,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., System]]:
    systems: list[System] = []

    def make(*, default_timings: bool = False, **overrides: str) -> System:
        system = System(
            clean_database,
            private_redis,
            openai_standin.base_url,
            graph_standin.base_url,
            tmp_path,
            default_timings=default_timings,
            **overrides,
        )
        systems.append(system)
        return system

    yield make
    for system in systems:
        system.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-6000:]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
