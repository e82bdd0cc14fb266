"""Building the Redis client: called by the composition root, never at import time."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_client(url: str, *, socket_timeout_s: float) -> redis.Redis:
    """A client whose every command fails within about `socket_timeout_s` when Redis is down.

    redis-py retries a failed command 10 times with backoff by default, which turns one outage
    into seconds of waiting per call. One immediate retry is kept: it is what recovers a pooled
    connection that Redis closed (a restart) without making a real outage slower to notice.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
    )


def reachable(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
