"""The recovery sweep queues stored work that is not moving, and leaves alone what is."""

from __future__ import annotations

import pytest

from application.ports.services import AIRequest
from domain.messages import MessageStatus, OrderingScope
from tests.unit.conftest import PHONE_NUMBER_ID, App, MakeApp

SCOPE = "conversation:1"


def _lose_the_trigger(app: App) -> None:
    """What an emptied Redis does to queued jobs."""
    app.queue.jobs.clear()
    app.queue.enqueued.clear()


def test_old_received_message_is_queued_again_and_then_answered(app: App) -> None:
    app.receive("Hi")
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)

    assert app.recover() == 1

    assert app.queue.enqueued == [SCOPE]
    app.drain()
    assert app.sent_texts() == ["reply to: Hi"]


def test_turn_left_open_by_a_dead_worker_is_queued_again(app: App) -> None:
    def worker_dies(_: AIRequest) -> None:
        raise RuntimeError("killed")

    app.ai.during_next_call(worker_dies)
    app.receive("Hi")
    with pytest.raises(RuntimeError):
        app.drain()
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)

    assert app.recover() == 1

    app.drain()
    assert app.sent_texts() == ["reply to: Hi"]
    assert [r.resumed for r in app.ai.requests] == [False, True]


def test_fresh_message_is_left_to_its_own_trigger(app: App) -> None:
    app.receive("Hi")
    _lose_the_trigger(app)
    app.clock.advance(minutes=4)

    assert app.recover() == 0
    assert app.queue.enqueued == []


def test_scope_a_worker_holds_is_not_queued(app: App) -> None:
    app.receive("Hi")
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)
    assert app.locks.acquire(SCOPE) is not None

    assert app.recover() == 0
    assert app.queue.enqueued == []


def test_scope_whose_holder_died_is_queued_once_its_lock_expires(app: App) -> None:
    app.receive("Hi")
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)
    app.locks.acquire(SCOPE)
    assert app.recover() == 0

    app.locks.expire(SCOPE)

    assert app.recover() == 1


def test_finished_and_skipped_work_is_not_queued(app: App) -> None:
    app.receive("Hi")
    app.receive(None, content_type="sticker", skip_reason="sticker")
    app.drain()
    app.clock.advance(hours=1)

    assert app.recover() == 0


def test_each_stalled_scope_is_queued_once(app: App) -> None:
    app.receive("one", customer="15550001")
    app.receive("two", customer="15550001")
    app.receive("three", customer="15550002")
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)

    assert app.recover() == 2

    assert sorted(app.queue.enqueued) == ["conversation:1", "conversation:2"]


def test_phone_number_ordering_queues_the_channel(make_app: MakeApp) -> None:
    app = make_app(ordering=OrderingScope.PHONE_NUMBER)
    app.receive("one", customer="15550001")
    app.receive("two", customer="15550002")
    _lose_the_trigger(app)
    app.clock.advance(minutes=6)

    assert app.recover() == 1

    assert app.queue.enqueued == [f"channel:{PHONE_NUMBER_ID}"]
    app.drain()
    assert {m.status for m in app.inbound_messages()} == {MessageStatus.ANSWERED}
