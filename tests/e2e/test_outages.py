"""A store down at the moment a customer writes: acknowledged means durable, and nothing else is."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.harness import System, free_port, text_delivery
from tests.support.standin_graph import StandInGraph
from tests.support.standin_openai import echo_reply


def test_with_redis_down_the_webhook_still_stores_and_answers_and_the_message_is_answered_later(
    make_system: Callable[..., System], graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    tenant = system.provision(phone_number_id="9301")
    system.redis.stop()

    started = time.monotonic()
    answer = system.post_delivery(text_delivery("9301", "15550093", "is anyone there?", "wamid.redis-down"))
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 10
    assert [m["status"] for m in system.messages(tenant)] == ["received"]

    system.redis.start()
    system.start_workers()
    sent = graph_standin.wait_for_sent(1, timeout=30)
    assert sent[0].text == echo_reply(["is anyone there?"])


def test_with_postgres_unreachable_the_webhook_answers_503_so_meta_delivers_again(
    make_system: Callable[..., System],
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    system = make_system(DATABASE_URL=unreachable, DATABASE_TIMEOUT="1000")
    system.start_web()

    answer = system.post_delivery(text_delivery("9401", "15550094", "hello", "wamid.pg-down"))

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"
    assert answer.headers["Retry-After"]
