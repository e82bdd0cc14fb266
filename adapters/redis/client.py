"""Building the Redis client: called by the composition root, never at import time."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection, parse_url
from redis.retry import Retry

from adapters.io_counts import IoCounts


def redis_client(url: str, *, socket_timeout_s: float, io_counts: IoCounts | None = None) -> redis.Redis:
    """A client whose every command fails within about `socket_timeout_s` when Redis is down.

    redis-py retries a failed command 10 times with backoff by default, which turns one outage
    into seconds of waiting per call. One immediate retry is kept: it is what recovers a pooled
    connection that Redis closed (a restart) without making a real outage slower to notice.
    With `io_counts` its connections count their round trips there (IO_COUNTS).
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
        **connection_options(url, io_counts),
    )


def connection_options(url: str, io_counts: IoCounts | None) -> dict[str, Any]:
    """Options for `redis.Redis.from_url(url, …)` (or a library that passes them on) that count round trips.

    Empty without `io_counts`: the client then uses redis-py's own connection class, unchanged.
    """
    if io_counts is None:
        return {}
    return {"connection_class": counting_connection_class(url, io_counts)}


def counting_connection_class(url: str, io_counts: IoCounts) -> type[AbstractConnection]:
    """The connection class `url` would use (TCP, TLS or Unix socket), counting one round trip per send.

    Every command, and a whole pipeline or MULTI/EXEC block, is written by one `send_packed_command`
    call and its replies are read before the next write, so each call is one round trip (connection
    set-up commands and health-check PINGs included: they are round trips too).
    """
    base: type[AbstractConnection] = parse_url(url).get(  # type: ignore[no-untyped-call]
        "connection_class", redis.Connection
    )

    def send_packed_command(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        io_counts.redis_round_trip()
        base.send_packed_command(self, command, check_health)  # type: ignore[no-untyped-call]

    return type(f"Counting{base.__name__}", (base,), {"send_packed_command": send_packed_command})


def reachable(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
