"""Cache-aside in Redis for channel routes and credit balances.

A cache failure is never an error for the caller: reads miss, writes and invalidations are skipped,
and the database answers. A circuit breaker skips Redis altogether for a while after a few failures
in a row, so an outage costs a few timeouts rather than one on every request.

A cached route holds its channel's access token encrypted, as PostgreSQL does (adapters/crypto.py);
an entry no configured key decrypts (written under a key since removed) is a miss, like any other
unreadable entry, and is replaced by the next put.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cattrs
import redis
import structlog
from attrs import evolve
from cattrs.preconf.json import make_converter

from adapters.circuit import Circuit, CircuitOpen
from adapters.crypto import FernetTokenCipher, TokenUndecryptable
from domain.credits import Credits
from domain.tenancy import Route

log = structlog.get_logger()

# ISO-8601 datetimes (with their offset) and enums by value: readable with redis-cli, stable across versions.
_converter = make_converter()

T = TypeVar("T")
Entity = TypeVar("Entity", Route, Credits)

#: Decoded routes a process keeps beside their bytes, at most (a few hundred bytes each).
_DECODED_ROUTES_KEPT = 10_000


def cache_circuit(*, failures: int = 3, reset_after_s: float = 5.0) -> Circuit:
    """A breaker to share between the caches of one process: they fail together when Redis is down."""
    return Circuit(
        "redis-cache",
        failures=failures,
        reset_after_s=reset_after_s,
        is_outage=lambda error: isinstance(error, redis.RedisError),
    )


class _RedisJsonCache:
    def __init__(self, client: redis.Redis, ttl_s: int, *, circuit: Circuit | None = None) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._circuit = circuit or cache_circuit()

    def _read(self, key: str, entity_type: type[Entity]) -> Entity | None:
        raw = self._guarded(lambda: self._client.get(key), what="get", key=key)
        if raw is None:
            return None
        return self._decode(key, raw, entity_type)

    def _decode(self, key: str, raw: bytes | str, entity_type: type[Entity]) -> Entity | None:
        try:
            return _converter.loads(raw, entity_type)
        except (ValueError, cattrs.BaseValidationError) as error:
            # An entry written by an older version of the code: miss, and let the caller's put replace it.
            log.warning("cache_entry_unreadable", key=key, error=str(error))
            return None

    def _write(self, key: str, entity: Route | Credits) -> None:
        payload = _converter.dumps(entity)
        self._guarded(lambda: self._client.set(key, payload, ex=self._ttl_s), what="put", key=key)

    def _delete(self, key: str) -> None:
        self._guarded(lambda: self._client.delete(key), what="invalidate", key=key)

    def _guarded(self, command: Callable[[], T], *, what: str, key: str) -> T | None:
        try:
            return self._circuit.call(command)
        except CircuitOpen:
            return None
        except redis.RedisError as error:
            log.warning("cache_unavailable", operation=what, key=key, error=str(error))
            return None


class RedisRouteCache(_RedisJsonCache):
    """Keyed by channel id alone: the webhook knows no tenant yet, and channel ids are globally unique.

    Each invalidation is also announced on `announcement_channel` (the channel id, or `ALL`), for the
    copies processes keep of what they read (adapters/redis/near_cache.py).
    """

    #: The announcement that every cached route was dropped.
    ALL = "*"

    def __init__(
        self, client: redis.Redis, ttl_s: int, *, cipher: FernetTokenCipher, circuit: Circuit | None = None
    ) -> None:
        super().__init__(client, ttl_s, circuit=circuit)
        self._cipher = cipher
        # The last entry read per key, as Redis held it and as decoded: the same bytes decode to the same
        # route, so reading them again skips the JSON, the structuring and the token's decryption (a fifth of
        # the webhook's CPU). Redis is still asked on every read that reaches here: a change is seen on the next.
        self._decoded: dict[str, tuple[bytes | str, Route]] = {}
        # Pub/sub channels are not per database: two deployments sharing a server hear only their own.
        self.announcement_channel = f"mcagent:route:announced:{client.connection_pool.connection_kwargs.get('db', 0)}"

    def get(self, phone_number_id: str) -> Route | None:
        key = _route_key(phone_number_id)
        raw = self._guarded(lambda: self._client.get(key), what="get", key=key)
        if raw is None:
            return None
        known = self._decoded.get(key)
        if known is not None and known[0] == raw:
            return known[1]
        cached = self._decode(key, raw, Route)
        if cached is None:
            return None
        try:
            route = _with_token(cached, self._cipher.decrypt(cached.channel.access_token))
        except TokenUndecryptable as error:
            log.warning("cache_entry_unreadable", key=key, error=str(error))
            return None
        if len(self._decoded) >= _DECODED_ROUTES_KEPT:
            self._decoded.clear()
        self._decoded[key] = (raw, route)
        return route

    def put(self, route: Route) -> None:
        self._write(
            _route_key(route.channel.phone_number_id),
            _with_token(route, self._cipher.encrypt(route.channel.access_token)),
        )

    def invalidate(self, phone_number_id: str) -> None:
        key = _route_key(phone_number_id)
        self._guarded(lambda: self._deleted_and_announced(key, phone_number_id), what="invalidate", key=key)

    def announcements(self) -> redis.client.PubSub:
        """A subscription of its own, to hear the invalidations on `announcement_channel`."""
        subscription: redis.client.PubSub = self._client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        return subscription

    def _deleted_and_announced(self, key: str, phone_number_id: str) -> None:
        """One round trip; deleted first, so that a process that hears of it and reads again misses."""
        pipeline = self._client.pipeline(transaction=False)
        pipeline.delete(key)
        pipeline.publish(self.announcement_channel, phone_number_id)
        pipeline.execute()

    def forget_all(self) -> int | None:
        """Drop every cached route; how many there were, or None when Redis could not be reached."""

        def drop() -> int:
            dropped = 0
            keys: list[bytes] = []
            for key in self._client.scan_iter(match=_route_key("*"), count=1000):
                keys.append(key)
                if len(keys) == 1000:
                    dropped += int(self._client.delete(*keys))
                    keys.clear()
            dropped += int(self._client.delete(*keys)) if keys else 0
            self._client.publish(self.announcement_channel, self.ALL)
            return dropped

        return self._guarded(drop, what="forget_all", key=_route_key("*"))


def _with_token(route: Route, access_token: str) -> Route:
    return evolve(route, channel=evolve(route.channel, access_token=access_token))


class RedisBalanceCache(_RedisJsonCache):
    def get(self, user_id: str) -> Credits | None:
        return self._read(_balance_key(user_id), Credits)

    def put(self, credits: Credits) -> None:
        self._write(_balance_key(credits.user_id), credits)

    def invalidate(self, user_id: str) -> None:
        self._delete(_balance_key(user_id))


def _route_key(phone_number_id: str) -> str:
    return f"mcagent:route:{phone_number_id}"


def _balance_key(user_id: str) -> str:
    return f"mcagent:balance:{user_id}"
