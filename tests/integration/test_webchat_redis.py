"""Web chat's Redis adapters against the real server: a signal published by one process (a worker) wakes a
watch in another (a web process), a listener that loses Redis wakes its streams to poll and hears again
once it is back, and the rate limits are counted together by every process."""

from __future__ import annotations

import time

import redis

from adapters.redis.client import redis_client
from adapters.webchat.rate_limits import WindowRateLimits
from adapters.webchat.signals import RedisSignals
from application.ports.webchat import Signal
from tests.e2e.harness import PrivateRedis


def _listening(signals: RedisSignals, publisher: RedisSignals, widget: str, visitor: str) -> None:
    """Wait until the listener hears: publish until a watch of its own is woken."""
    probe = signals.watch(widget, f"{visitor}-probe")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            publisher.notify(widget, f"{visitor}-probe", Signal.MESSAGE)
            if probe.wait(0.2):
                return
        raise AssertionError("the listener never heard a signal")
    finally:
        probe.close()


def test_a_signal_from_another_process_wakes_only_the_visitors_own_watch(redis_url: str, client: redis.Redis) -> None:
    web, worker = RedisSignals(client, redis_url), RedisSignals(redis_client(redis_url, socket_timeout_s=2), None)
    _listening(web, worker, "wc_1", "vis_a")
    mine, theirs = web.watch("wc_1", "vis_a"), web.watch("wc_1", "vis_b")

    worker.notify("wc_1", "vis_a", Signal.TYPING)
    worker.notify("wc_1", "vis_a", Signal.MESSAGE)

    deadline = time.monotonic() + 5
    arrived: set[Signal] = set()
    while arrived != {Signal.TYPING, Signal.MESSAGE} and time.monotonic() < deadline:
        arrived |= mine.wait(1)
    assert arrived == {Signal.TYPING, Signal.MESSAGE}
    assert theirs.wait(0.3) == frozenset()


def test_a_listener_that_loses_redis_wakes_its_streams_and_hears_again_when_it_is_back() -> None:
    server = PrivateRedis()
    server.start()
    try:
        web = RedisSignals(redis_client(server.url, socket_timeout_s=2), server.url)
        publisher = RedisSignals(redis_client(server.url, socket_timeout_s=2), None)
        _listening(web, publisher, "wc_1", "vis_a")
        watch = web.watch("wc_1", "vis_a")

        server.stop()
        started = time.monotonic()
        assert watch.wait(10) == {Signal.MESSAGE}  # woken to read the database itself
        assert time.monotonic() - started < 8
        # While deaf, a wait comes back within about a second (the stream polls).
        started = time.monotonic()
        watch.wait(30)
        assert time.monotonic() - started < 3

        publisher.notify("wc_1", "vis_a", Signal.MESSAGE)  # Redis is away: lost, and no exception

        server.start()
        _listening(web, publisher, "wc_1", "vis_a")
        watch.wait(0)  # what the reconnection itself signalled
        publisher.notify("wc_1", "vis_a", Signal.TYPING)
        assert Signal.TYPING in watch.wait(5)
    finally:
        server.stop()


def test_the_rate_limit_is_shared_by_every_process(redis_url: str, client: redis.Redis) -> None:
    one, two = WindowRateLimits(redis_url), WindowRateLimits(redis_url)

    allowed = [limiter.hit("visitor:wc_1:vis_a", 4) for limiter in (one, two, one, two)]
    refused = two.hit("visitor:wc_1:vis_a", 4)

    assert allowed == [None] * 4
    assert refused is not None and 1 <= refused <= 60
    assert one.hit("visitor:wc_1:vis_b", 4) is None  # another visitor has its own count


def test_a_rate_limit_whose_store_is_away_lets_the_visitor_write() -> None:
    server = PrivateRedis()  # never started: nothing listens on its port
    limits = WindowRateLimits(server.url)
    assert limits.hit("visitor:wc_1:vis_a", 1) is None
    assert limits.hit("visitor:wc_1:vis_a", 1) is None
