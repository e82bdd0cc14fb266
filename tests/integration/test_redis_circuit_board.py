"""The board on Redis where every process says which of its circuits are open (what /ready reads)."""

from __future__ import annotations

import time

import redis

from adapters.circuit import RedisCircuitBoard
from adapters.redis.client import redis_client


def test_an_open_circuit_is_seen_by_every_process_until_it_closes(redis_url: str) -> None:
    this_process = RedisCircuitBoard(redis_client(redis_url, socket_timeout_s=2))
    web_process = RedisCircuitBoard(redis_client(redis_url, socket_timeout_s=2))

    this_process.opened("openai", 30.0)
    this_process.opened("graph", 30.0)
    assert web_process.open_circuits() == {"graph": 1, "openai": 1}

    this_process.closed("openai")
    assert web_process.open_circuits() == {"graph": 1}


def test_a_circuit_reported_open_by_a_process_that_died_expires_when_it_would_let_calls_through(
    redis_url: str,
) -> None:
    board = RedisCircuitBoard(redis_client(redis_url, socket_timeout_s=2))

    board.opened("openai", 0.2)
    assert board.open_circuits() == {"openai": 1}
    time.sleep(0.3)

    assert board.open_circuits() == {}


def test_redis_down_is_never_the_callers_problem() -> None:
    board = RedisCircuitBoard(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))

    board.opened("openai", 30.0)
    board.closed("openai")

    assert board.open_circuits() == {}
