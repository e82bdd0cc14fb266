"""Live signals to open widgets: in one process (dev mode, tests), and across processes over Redis pub/sub.

Every web process holds the watches of the widgets it streams to in an `InProcessSignals` hub. With Redis,
a signal is published on `mcagent:webchat:<widget>:<visitor>`; one listener thread per web process, on a
pattern subscription, hands each to the local hub. Workers only publish. Pub/sub keeps nothing: a signal
sent while a widget is between two streams is missed, which is why a stream reads the timeline from the
database when it opens and signals only say "read it again".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import redis

from adapters.io_counts import IoCounts
from adapters.redis.client import connection_options
from application.ports.webchat import Signal

log = logging.getLogger(__name__)

_CHANNEL_PREFIX = "mcagent:webchat:"
#: While the listener is not connected, how often a waiting stream reads the timeline anyway.
_POLL_WHILE_DEAF_S = 1.0


class _Watch:
    def __init__(self, hub: InProcessSignals, key: tuple[str, str]) -> None:
        self._hub = hub
        self.key = key
        self._arrived: set[Signal] = set()
        self._condition = threading.Condition()

    def push(self, signal: Signal) -> None:
        with self._condition:
            self._arrived.add(signal)
            self._condition.notify_all()

    def wait(self, timeout_s: float) -> frozenset[Signal]:
        with self._condition:
            if not self._arrived:
                self._condition.wait(min(timeout_s, self._hub.longest_wait_s))
            arrived = frozenset(self._arrived)
            self._arrived.clear()
            return arrived

    def close(self) -> None:
        self._hub.forget(self)


class InProcessSignals:
    """VisitorSignals within one process; the hub the Redis listener feeds in the others."""

    def __init__(self) -> None:
        self._watches: defaultdict[tuple[str, str], set[_Watch]] = defaultdict(set)
        self._mutex = threading.Lock()

    @property
    def longest_wait_s(self) -> float:
        return float("inf")

    def notify(self, widget_id: str, visitor_id: str, signal: Signal) -> None:
        self.deliver((widget_id, visitor_id), signal)

    def deliver(self, key: tuple[str, str], signal: Signal) -> None:
        with self._mutex:
            watches = tuple(self._watches.get(key, ()))
        for watch in watches:
            watch.push(signal)

    def watch(self, widget_id: str, visitor_id: str) -> _Watch:
        watch = _Watch(self, (widget_id, visitor_id))
        with self._mutex:
            self._watches[watch.key].add(watch)
        return watch

    def forget(self, watch: _Watch) -> None:
        with self._mutex:
            watches = self._watches.get(watch.key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.key]

    def wake_all(self) -> None:
        with self._mutex:
            watches = [watch for group in self._watches.values() for watch in group]
        for watch in watches:
            watch.push(Signal.MESSAGE)

    @property
    def watching(self) -> int:
        with self._mutex:
            return sum(len(watches) for watches in self._watches.values())


class RedisSignals(InProcessSignals):
    """Publishes with the shared client; listens, from the first watch on, on a connection of its own."""

    def __init__(self, client: redis.Redis, listener_url: str | None, *, io_counts: IoCounts | None = None) -> None:
        super().__init__()
        self._client = client
        self._listener_url = listener_url
        self._io_counts = io_counts
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._start_mutex = threading.Lock()

    @property
    def longest_wait_s(self) -> float:
        return float("inf") if self._listening.is_set() else _POLL_WHILE_DEAF_S

    def notify(self, widget_id: str, visitor_id: str, signal: Signal) -> None:
        try:
            self._client.publish(f"{_CHANNEL_PREFIX}{widget_id}:{visitor_id}", signal.value)
        except redis.RedisError as error:
            # The reply is stored; the widget finds it when its stream next reads the timeline.
            log.warning("webchat_signal_lost", extra={"widget_id": widget_id, "error": str(error)})

    def watch(self, widget_id: str, visitor_id: str) -> _Watch:
        self._start_listener()
        return super().watch(widget_id, visitor_id)

    def _start_listener(self) -> None:
        if self._listener is not None or self._listener_url is None:
            return
        with self._start_mutex:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="webchat-signals", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        assert self._listener_url is not None
        pause = 0.1
        while True:
            client = redis.Redis.from_url(
                self._listener_url,
                socket_timeout=5.0,
                socket_connect_timeout=2.0,
                **connection_options(self._listener_url, self._io_counts),
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
                pubsub.psubscribe(f"{_CHANNEL_PREFIX}*")
                self._listening.set()
                self.wake_all()  # what was signalled while deaf is read from the timeline now
                pause = 0.1
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (redis.RedisError, OSError) as error:
                if self._listening.is_set():
                    log.warning("webchat_listener_lost", extra={"error": str(error)})
                self._listening.clear()
                self.wake_all()  # the streams poll the timeline until the listener is back
            finally:
                client.close()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _dispatch(self, message: dict[str, object]) -> None:
        channel, data = message.get("channel"), message.get("data")
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        widget_id, _, visitor_id = channel.decode("utf-8", "replace").removeprefix(_CHANNEL_PREFIX).partition(":")
        try:
            signal = Signal(data.decode("ascii", "replace"))
        except ValueError:
            return
        self.deliver((widget_id, visitor_id), signal)
