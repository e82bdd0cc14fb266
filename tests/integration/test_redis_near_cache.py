"""A process's copies of the routes (adapters/redis/near_cache.py) against the real Redis.

Each `NearRouteCache` here stands for one process: its own client, its own listener. What a user would
notice is a change to a channel or its agent not being seen by a webhook or a worker; so the tests make
the change in one "process" and read in another, break the listener's connection, and race a read with
an announcement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from attrs import evolve
from pytest_mock import MockerFixture

from adapters.io_counts import IoCounts
from adapters.redis.cache import RedisRouteCache
from adapters.redis.client import redis_client
from adapters.redis.near_cache import NearRouteCache
from domain.tenancy import Route
from tests.integration.test_redis_cache import ROUTE
from tests.support.secrets import TEST_CIPHER

CHANGED = evolve(ROUTE, agent=evolve(ROUTE.agent, prompt_id="pmpt_changed"))


class Process:
    """One process's cache: its own client (counting its round trips) and its own listener."""

    def __init__(self, redis_url: str, **near: float | Callable[[], float]) -> None:
        self.counts = IoCounts()
        self.client = redis_client(redis_url, socket_timeout_s=2, io_counts=self.counts)
        self.shared = RedisRouteCache(self.client, ttl_s=300, cipher=TEST_CIPHER)
        # Copies kept far longer than any wait here, unless a test says: their expiry hides nothing.
        self.cache = NearRouteCache(self.shared, **{"ttl_s": 300.0, **near})  # type: ignore[arg-type]

    def round_trips_of(self, read: Callable[[], object]) -> int:
        self.counts.take()
        read()
        return self.counts.take().redis_round_trips

    def listening(self) -> None:
        """Read once (which starts the listener) and wait until it is subscribed."""
        self.cache.get("pn_none")
        _until(lambda: self.cache.listening, "the listener subscribed")

    def close(self) -> None:
        self.cache.close()
        self.client.close()


@pytest.fixture
def processes(redis_url: str, client: redis.Redis) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(**near: float | Callable[[], float]) -> Process:
        process = Process(redis_url, **near)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def _until(condition: Callable[[], bool], what: str, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        time.sleep(0.005)


def test_a_route_read_again_is_served_without_asking_redis(processes: Callable[..., Process]) -> None:
    web = processes()
    web.shared.put(ROUTE)
    web.listening()

    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 1
    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 0
    assert web.cache.get("pn_123") == ROUTE


def test_a_change_made_in_one_process_is_seen_by_the_others_at_once(processes: Callable[..., Process]) -> None:
    """The API's process changes the agent (update, then forget); the webhook's next read has it."""
    api, web, worker = processes(), processes(), processes()
    api.shared.put(ROUTE)
    for process in (web, worker):
        process.listening()
        assert process.cache.get("pn_123") == ROUTE  # kept

    api.shared.put(CHANGED)  # what the database now says, as a later read would cache it
    api.cache.invalidate("pn_123")

    for process in (web, worker):
        _until(lambda process=process: process.cache.get("pn_123") != ROUTE, "the copy dropped")  # type: ignore[misc]
    # Dropped from Redis too: the first reader after the change reads the database and caches it again.
    assert api.shared.get("pn_123") is None


def test_dropping_every_route_reaches_every_process(processes: Callable[..., Process]) -> None:
    api, web = processes(), processes()
    api.shared.put(ROUTE)
    web.listening()
    web.cache.get("pn_123")

    assert api.shared.forget_all() == 1

    _until(lambda: web.cache.get("pn_123") is None, "every copy dropped")


def test_nothing_is_served_from_copies_before_the_listener_is_subscribed(
    processes: Callable[..., Process], mocker: MockerFixture
) -> None:
    web = processes()
    web.shared.put(ROUTE)
    mocker.patch.object(web.shared, "announcements", side_effect=redis.ConnectionError("refused"))

    for _ in range(3):
        assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 1  # every read asks Redis
    assert not web.cache.listening


def test_copies_are_dropped_when_the_listener_lost_its_connection(
    processes: Callable[..., Process], client: redis.Redis
) -> None:
    """Redis closed the subscription (a restart, a proxy, CLIENT KILL): what was announced meanwhile was
    not heard, so what the process kept is not trusted once it is subscribed again."""
    web = processes()
    web.shared.put(ROUTE)
    web.listening()
    web.cache.get("pn_123")
    web.shared.put(CHANGED)  # a change this process does not hear of (no announcement)
    assert web.cache.get("pn_123") == ROUTE  # the copy, as long as the subscription holds

    client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    _until(lambda: web.cache.get("pn_123") == CHANGED, "the copy dropped after the subscription was lost")
    _until(lambda: web.cache.listening, "listening again")
    web.cache.get("pn_123")
    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 0  # kept again


def test_a_read_that_raced_an_announcement_is_not_kept(
    processes: Callable[..., Process], mocker: MockerFixture
) -> None:
    """The webhook read the old route from Redis while the API changed it and announced it: the old
    route must not outlive the announcement in this process."""
    api, web = processes(), processes()
    api.shared.put(ROUTE)
    web.listening()
    read = web.shared.get

    def read_while_it_changes(phone_number_id: str) -> Route | None:
        route = read(phone_number_id)  # the old route
        heard = web.cache._heard
        api.cache.invalidate(phone_number_id)
        _until(lambda: web.cache._heard > heard, "the announcement heard")
        return route

    mocker.patch.object(web.shared, "get", side_effect=read_while_it_changes)
    assert web.cache.get("pn_123") == ROUTE  # this read may answer with what it read...
    mocker.stopall()

    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 1  # ...but did not keep it


def test_a_copy_is_asked_of_redis_again_after_its_time(processes: Callable[..., Process]) -> None:
    now = [1000.0]
    web = processes(ttl_s=5.0, clock=lambda: now[0])
    web.shared.put(ROUTE)
    web.listening()
    web.cache.get("pn_123")

    now[0] += 4.9
    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 0
    now[0] += 0.2
    assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 1


def test_a_process_sharing_the_server_under_another_database_hears_only_its_own(
    processes: Callable[..., Process], redis_url: str
) -> None:
    web = processes()
    other_url = redis_url.rsplit("/", 1)[0] + "/" + str((web.client.connection_pool.connection_kwargs["db"] + 1) % 16)
    other = Process(other_url)
    try:
        web.shared.put(ROUTE)
        web.listening()
        web.cache.get("pn_123")
        heard = web.cache._heard

        other.cache.invalidate("pn_123")
        processes().cache.invalidate("pn_other")  # an announcement of this database, after the other's

        _until(lambda: web.cache._heard > heard, "this database's announcement heard")
        assert web.cache._heard == heard + 1
        assert web.round_trips_of(lambda: web.cache.get("pn_123")) == 0
    finally:
        other.close()
