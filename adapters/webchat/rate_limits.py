"""Rate limits of the widget's public endpoints, counted by the `limits` library.

A sliding-window counter per key (two counters per key, no per-request log): in Redis, so every web process
counts together; in process memory in dev mode. A store that cannot count lets the request through (with a
warning): the limits protect the credits from a flood, they must not take the chat down with Redis.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from adapters.io_counts import IoCounts
from adapters.redis.client import connection_options

log = logging.getLogger(__name__)


class WindowRateLimits:
    def __init__(self, storage_uri: str, *, io_counts: IoCounts | None = None) -> None:
        # `limits` builds its own Redis client from the URI, passing the options on to redis-py; it connects
        # on first use, after the fork. `io_counts` is for a Redis URI only (IO_COUNTS).
        storage = storage_from_string(
            storage_uri, key_prefix="mcagent:ratelimit", socket_timeout=2, **connection_options(storage_uri, io_counts)
        )
        assert isinstance(storage, Storage)  # the synchronous storages, for a synchronous URI
        self._storage = storage
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)

    def hit(self, key: str, per_minute: int) -> float | None:
        item = RateLimitItemPerMinute(per_minute)
        try:
            if self._limiter.hit(item, key):
                return None
            reset_at, _ = self._limiter.get_window_stats(item, key)
        except Exception as error:  # any store failure: redis' errors are not `limits`' own
            log.warning("rate_limit_unavailable", extra={"key": key, "error": str(error)})
            return None
        return max(1.0, reset_at - time.time())
