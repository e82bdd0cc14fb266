"""A process's own copy of the channel routes it read from Redis, kept only while it hears every change.

Every inbound message and every AI turn looks its channel's route up; asking Redis each time was a tenth
of the webhook's CPU (bench/README.md, "The route read once per process").
Routes change rarely (a channel edited, an agent created, a relink), and each change is announced: the
shared cache's `invalidate` deletes the entry and publishes its channel id on one Redis channel
(`RedisRouteCache`). Here a background thread listens to those announcements and drops the copies they
name, so a change is seen by every process within the time Redis takes to pass a message on.

A copy is only kept, and only served, while the listener is subscribed: before its subscription is
confirmed, after its connection fails, and until it is subscribed again, every read goes to Redis, and
every copy is dropped on each (re)subscription, since announcements made meanwhile were not heard. A
read that raced an announcement is not kept (the announcements heard are counted). Copies also expire
after `ttl_s`, which bounds what a connection that died without a word (no reset, no error) could hide.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from adapters.redis.cache import RedisRouteCache
from domain.tenancy import Route

log = structlog.get_logger()

#: How long a copy is served before Redis is asked again, whatever was heard.
NEAR_TTL_S = 5.0
#: Copies a process keeps at most (a few hundred bytes each); all are dropped when it is reached.
_KEPT = 10_000
#: Pause between attempts to subscribe again while Redis cannot be reached.
_RESUBSCRIBE_AFTER_S = 1.0
#: How long the listener blocks waiting for an announcement before it looks whether it was closed.
_WAIT_S = 1.0


class NearRouteCache:
    """`RouteCache` in front of `RedisRouteCache`: reads served from this process's copies when it can."""

    def __init__(
        self,
        shared: RedisRouteCache,
        *,
        ttl_s: float = NEAR_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[Route, float]] = {}
        # Announcements heard (and subscriptions made): a read that saw this change is not kept.
        self._heard = 0
        self._subscribed = threading.Event()
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._listener_pid = 0

    def get(self, phone_number_id: str) -> Route | None:
        if self._subscribed.is_set():
            copy = self._copies.get(phone_number_id)
            if copy is not None and copy[1] > self._clock():
                return copy[0]
        else:
            self._listen()
        heard = self._heard
        route = self._shared.get(phone_number_id)
        if route is not None and self._subscribed.is_set():
            with self._lock:
                if heard == self._heard:
                    if len(self._copies) >= _KEPT:
                        self._copies.clear()
                    self._copies[phone_number_id] = (route, self._clock() + self._ttl_s)
        return route

    def put(self, route: Route) -> None:
        self._shared.put(route)

    def invalidate(self, phone_number_id: str) -> None:
        self._drop(phone_number_id)
        self._shared.invalidate(phone_number_id)

    def forget_all(self) -> int | None:
        self._drop(None)
        return self._shared.forget_all()

    def close(self) -> None:
        """Stop listening (tests; a process that exits needs nothing: the listener is a daemon thread)."""
        self._closed.set()
        listener = self._listener
        if listener is not None:
            listener.join(timeout=_WAIT_S * 3)

    @property
    def listening(self) -> bool:
        """True while every change is heard, so that copies are served."""
        return self._subscribed.is_set()

    def _drop(self, phone_number_id: str | None) -> None:
        """Drop one copy, or all of them (None), and make any read in flight not keep what it read."""
        with self._lock:
            self._heard += 1
            if phone_number_id is None:
                self._copies.clear()
            else:
                self._copies.pop(phone_number_id, None)

    def _listen(self) -> None:
        """Start the listener of this process, once (again in a forked child: threads do not survive fork)."""
        with self._lock:
            if self._closed.is_set():
                return
            if self._listener is not None and self._listener_pid == os.getpid() and self._listener.is_alive():
                return
            self._subscribed.clear()
            self._copies.clear()
            self._listener_pid = os.getpid()
            self._listener = threading.Thread(target=self._listen_forever, name="route-announcements", daemon=True)
            self._listener.start()

    def _listen_forever(self) -> None:
        unheard_since: float | None = None
        while not self._closed.is_set():
            pubsub: redis.client.PubSub | None = None
            try:
                pubsub = self._shared.announcements()
                pubsub.subscribe(self._shared.announcement_channel)
                while not self._closed.is_set():
                    if self._heard_one(pubsub.get_message(timeout=_WAIT_S)) and unheard_since is not None:
                        log.info("route_announcements_heard_again", after_s=round(time.monotonic() - unheard_since, 1))
                        unheard_since = None
            except (redis.RedisError, OSError) as error:
                if unheard_since is None:
                    unheard_since = time.monotonic()
                    log.warning("route_announcements_unheard", error=str(error))
                self._closed.wait(_RESUBSCRIBE_AFTER_S)
            finally:
                # Until subscribed again, nothing is served from copies, and nothing kept from now is trusted.
                self._subscribed.clear()
                self._drop(None)
                if pubsub is not None:
                    pubsub.close()

    def _heard_one(self, message: dict[str, Any] | None) -> bool:
        """Act on what the subscription received; True when it was (again) subscribed."""
        if message is None:
            return False
        if message["type"] == "message":
            self._drop(_channel_named(message["data"]))
            return False
        if message["type"] != "subscribe":
            return False
        # Whatever was announced before this moment was not heard: start from nothing.
        self._drop(None)
        self._subscribed.set()
        return True


def _channel_named(data: bytes | str) -> str | None:
    """The channel id an announcement names; None for all of them."""
    named = data.decode("utf-8") if isinstance(data, bytes) else data
    return None if named == RedisRouteCache.ALL else named
