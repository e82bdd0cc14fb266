"""The PostgreSQL messages repository: recording, ordering, batches, replies, delivery, listing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.ports.repositories import MessageQuery
from domain.errors import ValidationFailed
from domain.messages import (
    DeliveryReport,
    Direction,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
)
from domain.tenancy import Route
from domain.turns import AIReply
from tests.support.postgres import NOW, an_inbound, minutes, seed_route


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=12, timeout_s=10)
    yield pool
    pool.close()


@pytest.fixture
def route(pool: ConnectionPool) -> Route:
    return seed_route(pool, "user-1", "pn-1")


def _record(pool: ConnectionPool, route: Route, platform_message_id: str, **kwargs: Any) -> RecordedInbound:
    with PostgresUnitOfWork(pool) as uow:
        recorded = uow.messages.record_inbound(route, an_inbound(route, platform_message_id, **kwargs), NOW)
        uow.commit()
    return recorded


def _conversation_scope(conversation_id: int) -> ScopeKey:
    return ScopeKey(OrderingScope.CONVERSATION, str(conversation_id))


CHANNEL = ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1")


# --- recording inbound messages ------------------------------------------------------------------


def test_first_message_opens_a_conversation_and_the_next_continues_it(pool: ConnectionPool, route: Route) -> None:
    first = _record(pool, route, "wamid.1", sent_at=NOW - minutes(2))
    second = _record(pool, route, "wamid.2", customer_name=None, sent_at=NOW - minutes(1))

    assert (first.sequence_no, second.sequence_no) == (1, 2)
    assert first.conversation_id == second.conversation_id
    assert not first.duplicate and not second.duplicate
    with PostgresUnitOfWork(pool) as uow:
        conversation = uow.conversations.get(first.conversation_id)
        [message] = uow.messages.get_many([first.message_id])
    assert conversation is not None
    assert conversation.customer_name == "Ann"  # a message without a name keeps the known one
    assert conversation.last_customer_message_at == NOW - minutes(1)
    assert conversation.last_message_at == NOW
    assert (message.direction, message.status, message.text, message.sent_at) == (
        Direction.INBOUND,
        MessageStatus.RECEIVED,
        "hello",
        NOW - minutes(2),
    )


def test_each_customer_gets_a_conversation_of_their_own(pool: ConnectionPool, route: Route) -> None:
    ann = _record(pool, route, "wamid.1", customer_id="ann")
    bob = _record(pool, route, "wamid.2", customer_id="bob")

    assert ann.conversation_id != bob.conversation_id
    assert (ann.sequence_no, bob.sequence_no) == (1, 1)


def test_a_message_that_cannot_be_answered_is_stored_skipped_with_its_reason(
    pool: ConnectionPool, route: Route
) -> None:
    recorded = _record(pool, route, "wamid.img", text=None, skip_reason="image messages are not answered")

    with PostgresUnitOfWork(pool) as uow:
        [message] = uow.messages.get_many([recorded.message_id])
        assert not uow.messages.has_pending(_conversation_scope(recorded.conversation_id))
    assert (message.status, message.failure_reason, message.content_type) == (
        MessageStatus.SKIPPED,
        "image messages are not answered",
        "image",
    )


def test_the_platform_payload_is_kept_as_jsonb(pool: ConnectionPool, route: Route, clean_database: str) -> None:
    recorded = _record(pool, route, "wamid.1")

    with psycopg.connect(clean_database) as conn:
        row = conn.execute(
            "SELECT jsonb_typeof(raw), raw->>'id' FROM messages WHERE message_id = %s", (recorded.message_id,)
        ).fetchone()
    assert row == ("object", "wamid.1")


def test_second_delivery_of_same_message_is_ignored(pool: ConnectionPool, route: Route) -> None:
    first = _record(pool, route, "wamid.1")
    again = _record(pool, route, "wamid.1")
    following = _record(pool, route, "wamid.2")

    assert again == RecordedInbound(first.message_id, first.conversation_id, first.sequence_no, duplicate=True)
    assert following.sequence_no == 2  # a redelivery does not use up a sequence number


def test_the_same_platform_id_on_another_channel_is_another_message(pool: ConnectionPool, route: Route) -> None:
    other = seed_route(pool, "user-1", "pn-2")
    first = _record(pool, route, "id-1")
    elsewhere = _record(pool, other, "id-1")

    assert not elsewhere.duplicate
    assert elsewhere.message_id != first.message_id


def test_a_copy_arriving_while_the_first_is_uncommitted_is_a_duplicate(pool: ConnectionPool, route: Route) -> None:
    results: list[RecordedInbound] = []
    with PostgresUnitOfWork(pool) as uow:
        first = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        copy = threading.Thread(target=lambda: results.append(_record(pool, route, "wamid.1")))
        copy.start()
        time.sleep(0.3)  # the copy waits on this transaction's locks
        assert not results
        uow.commit()
    copy.join(timeout=10)

    assert results == [RecordedInbound(first.message_id, first.conversation_id, 1, duplicate=True)]


def test_concurrent_copies_of_one_message_store_it_once(pool: ConnectionPool, route: Route) -> None:
    barrier = threading.Barrier(8)

    def record(_: int) -> RecordedInbound:
        with PostgresUnitOfWork(pool) as uow:
            uow.users.get("user-1")
            barrier.wait()
            recorded = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
            uow.commit()
            return recorded

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(record, range(8)))

    assert sum(1 for r in results if not r.duplicate) == 1
    assert len({r.message_id for r in results}) == 1
    with PostgresUnitOfWork(pool) as uow:
        page = uow.messages.list("user-1", MessageQuery())
    assert len(page.items) == 1


def test_concurrent_messages_of_one_conversation_get_distinct_consecutive_numbers(
    pool: ConnectionPool, route: Route
) -> None:
    barrier = threading.Barrier(8)

    def record(n: int) -> RecordedInbound:
        with PostgresUnitOfWork(pool) as uow:
            uow.users.get("user-1")
            barrier.wait()
            recorded = uow.messages.record_inbound(route, an_inbound(route, f"wamid.{n}"), NOW)
            uow.commit()
            return recorded

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(record, range(8)))

    assert sorted(r.sequence_no for r in results) == list(range(1, 9))
    by_sequence = sorted(results, key=lambda r: r.sequence_no)
    assert [r.message_id for r in by_sequence] == sorted(r.message_id for r in results)


def test_sequence_numbers_follow_commit_order(pool: ConnectionPool, route: Route) -> None:
    later: list[RecordedInbound] = []
    with PostgresUnitOfWork(pool) as uow:
        earlier = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        waiting = threading.Thread(target=lambda: later.append(_record(pool, route, "wamid.2")))
        waiting.start()
        time.sleep(0.3)
        assert not later  # the second message of the conversation waits for the first to commit
        other_customer = _record(pool, route, "wamid.3", customer_id="someone-else")
        uow.commit()
    waiting.join(timeout=10)

    assert other_customer.sequence_no == 1  # other conversations do not wait
    assert later[0].sequence_no == earlier.sequence_no + 1


def test_a_rolled_back_message_leaves_no_gap(pool: ConnectionPool, route: Route) -> None:
    with PostgresUnitOfWork(pool) as uow:
        uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)

    assert _record(pool, route, "wamid.1").sequence_no == 1


def test_record_inbound_needs_an_agent(pool: ConnectionPool, route: Route) -> None:
    with pytest.raises(ValueError), PostgresUnitOfWork(pool) as uow:
        uow.messages.record_inbound(Route(route.channel, None), an_inbound(route, "wamid.1"), NOW)


# --- pending work --------------------------------------------------------------------------------


def test_conversation_batch_is_its_received_messages_in_order(pool: ConnectionPool, route: Route) -> None:
    first = _record(pool, route, "wamid.1")
    _record(pool, route, "wamid.skip", text=None, skip_reason="sticker")
    third = _record(pool, route, "wamid.3")
    _record(pool, route, "wamid.other", customer_id="bob")

    with PostgresUnitOfWork(pool) as uow:
        batch = uow.messages.pending_batch(_conversation_scope(first.conversation_id))
        assert uow.messages.has_pending(_conversation_scope(first.conversation_id))
    assert [(m.message_id, m.sequence_no) for m in batch] == [(first.message_id, 1), (third.message_id, 3)]


def test_channel_batch_stops_at_the_first_message_of_another_conversation(pool: ConnectionPool, route: Route) -> None:
    ann_1 = _record(pool, route, "wamid.1", customer_id="ann")
    ann_2 = _record(pool, route, "wamid.2", customer_id="ann")
    bob_1 = _record(pool, route, "wamid.3", customer_id="bob")
    ann_3 = _record(pool, route, "wamid.4", customer_id="ann")

    batches: list[list[int]] = []
    with PostgresUnitOfWork(pool) as uow:
        while uow.messages.has_pending(CHANNEL):
            batch = [m.message_id for m in uow.messages.pending_batch(CHANNEL)]
            batches.append(batch)
            uow.messages.mark_inbound(batch, MessageStatus.ANSWERED, NOW)
    assert batches == [[ann_1.message_id, ann_2.message_id], [bob_1.message_id], [ann_3.message_id]]


def test_a_channel_with_nothing_received_has_an_empty_batch(pool: ConnectionPool, route: Route) -> None:
    with PostgresUnitOfWork(pool) as uow:
        assert uow.messages.pending_batch(CHANNEL) == []
        assert not uow.messages.has_pending(CHANNEL)


def test_mark_inbound_sets_status_and_failure(pool: ConnectionPool, route: Route) -> None:
    first = _record(pool, route, "wamid.1")
    second = _record(pool, route, "wamid.2")
    with PostgresUnitOfWork(pool) as uow:
        uow.messages.mark_inbound(
            [second.message_id, first.message_id],
            MessageStatus.FAILED,
            NOW + minutes(1),
            failure_reason="no credits",
            failure_code="insufficient_credits",
        )
        messages = uow.messages.get_many([second.message_id, first.message_id])
    assert [m.message_id for m in messages] == [first.message_id, second.message_id]
    assert {(m.status, m.failure_reason, m.failure_code, m.updated_at) for m in messages} == {
        (MessageStatus.FAILED, "no credits", "insufficient_credits", NOW + minutes(1))
    }


def test_stalled_scopes_are_old_received_messages_and_old_open_turns(pool: ConnectionPool, route: Route) -> None:
    old = _record(pool, route, "wamid.1", customer_id="ann")
    with PostgresUnitOfWork(pool) as uow:
        turn_message = uow.messages.record_inbound(route, an_inbound(route, "wamid.2", customer_id="bob"), NOW)
        uow.turns.start(
            user_id="user-1",
            conversation_id=turn_message.conversation_id,
            phone_number_id="pn-1",
            inbound_ids=[turn_message.message_id],
            credits_reserved=1,
            now=NOW,
        )
        uow.messages.record_inbound(route, an_inbound(route, "wamid.3", customer_id="cy"), NOW + minutes(10))
        uow.commit()

        by_conversation = uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW + minutes(5), limit=10)
        by_channel = uow.messages.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW + minutes(5), limit=10)
        assert uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW, limit=10) == []
        assert len(uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW + minutes(5), limit=1)) == 1
    assert set(by_conversation) == {
        _conversation_scope(old.conversation_id),
        _conversation_scope(turn_message.conversation_id),
    }
    assert by_channel == [CHANNEL]


# --- replies and their delivery ------------------------------------------------------------------


def _reply(pool: ConnectionPool, route: Route, texts: list[str]) -> list[Message]:
    with PostgresUnitOfWork(pool) as uow:
        inbound = uow.messages.record_inbound(route, an_inbound(route, "wamid.in"), NOW)
        turn = uow.turns.start(
            user_id="user-1",
            conversation_id=inbound.conversation_id,
            phone_number_id="pn-1",
            inbound_ids=[inbound.message_id],
            credits_reserved=1,
            now=NOW,
        )
        conversation = uow.conversations.get(inbound.conversation_id)
        assert conversation is not None
        reply = AIReply(text=" ".join(texts), response_id="resp_1", input_tokens=40, output_tokens=9)
        outbound = uow.messages.add_outbound(conversation, turn.turn_id, texts, reply, NOW + minutes(1))
        uow.commit()
    return outbound


def test_a_reply_is_stored_as_pending_pieces_after_the_inbound_message(pool: ConnectionPool, route: Route) -> None:
    outbound = _reply(pool, route, ["part one", "part two"])

    assert [(m.sequence_no, m.text, m.status, m.direction) for m in outbound] == [
        (2, "part one", MessageStatus.PENDING, Direction.OUTBOUND),
        (3, "part two", MessageStatus.PENDING, Direction.OUTBOUND),
    ]
    assert [(m.input_tokens, m.output_tokens) for m in outbound] == [(40, 9), (None, None)]
    assert {m.content_type for m in outbound} == {"text"}
    with PostgresUnitOfWork(pool) as uow:
        assert uow.messages.outbound_for_turn(outbound[0].turn_id or 0) == outbound
        conversation = uow.conversations.get(outbound[0].conversation_id)
    assert conversation is not None and conversation.last_message_at == NOW + minutes(1)
    assert _record(pool, route, "wamid.next").sequence_no == 4


def test_a_reply_is_taken_for_sending_once(pool: ConnectionPool, route: Route) -> None:
    [message] = _reply(pool, route, ["hi"])
    with PostgresUnitOfWork(pool) as uow:
        assert uow.messages.start_sending(message.message_id, NOW) is True
        assert uow.messages.start_sending(message.message_id, NOW) is False
        uow.messages.record_sent(message.message_id, "wamid.out", NOW + minutes(1))
        [sent] = uow.messages.get_many([message.message_id])
    assert (sent.status, sent.platform_message_id, sent.sent_at) == (MessageStatus.SENT, "wamid.out", NOW + minutes(1))


def test_a_failed_send_keeps_the_channels_code_and_reason(pool: ConnectionPool, route: Route) -> None:
    [message] = _reply(pool, route, ["hi"])
    with PostgresUnitOfWork(pool) as uow:
        uow.messages.start_sending(message.message_id, NOW)
        uow.messages.record_send_failure(message.message_id, "131047", "Re-engagement message", NOW)
        [failed] = uow.messages.get_many([message.message_id])
    assert (failed.status, failed.failure_code, failed.failure_reason) == (
        MessageStatus.FAILED,
        "131047",
        "Re-engagement message",
    )


def _sent_reply(pool: ConnectionPool, route: Route) -> Message:
    [message] = _reply(pool, route, ["hi"])
    with PostgresUnitOfWork(pool) as uow:
        uow.messages.start_sending(message.message_id, NOW)
        uow.messages.record_sent(message.message_id, "wamid.out", NOW)
        uow.commit()
    return message


def _report(pool: ConnectionPool, status: MessageStatus, **error: str) -> bool:
    with PostgresUnitOfWork(pool) as uow:
        applied = uow.messages.apply_delivery_report(
            DeliveryReport("pn-1", "wamid.out", status, NOW + minutes(2), **error), NOW + minutes(2)
        )
        uow.commit()
    return applied


def _stored(pool: ConnectionPool, message: Message) -> Message:
    with PostgresUnitOfWork(pool) as uow:
        [stored] = uow.messages.get_many([message.message_id])
    return stored


def test_delivery_reports_out_of_order_never_move_the_status_back(pool: ConnectionPool, route: Route) -> None:
    message = _sent_reply(pool, route)

    assert _report(pool, MessageStatus.READ)
    assert _report(pool, MessageStatus.DELIVERED)
    assert _report(pool, MessageStatus.SENT)

    assert _stored(pool, message).status == MessageStatus.READ


def test_a_failure_after_delivery_keeps_delivered_but_records_the_error(pool: ConnectionPool, route: Route) -> None:
    message = _sent_reply(pool, route)

    _report(pool, MessageStatus.DELIVERED)
    _report(pool, MessageStatus.FAILED, error_code="131026", error_reason="Message undeliverable")

    stored = _stored(pool, message)
    assert (stored.status, stored.failure_code, stored.failure_reason) == (
        MessageStatus.DELIVERED,
        "131026",
        "Message undeliverable",
    )


def test_a_failure_before_delivery_fails_the_message(pool: ConnectionPool, route: Route) -> None:
    message = _sent_reply(pool, route)

    _report(pool, MessageStatus.FAILED, error_code="131049", error_reason="ecosystem engagement")

    assert _stored(pool, message).status == MessageStatus.FAILED


def test_a_report_about_an_unknown_message_changes_nothing(pool: ConnectionPool, route: Route) -> None:
    _record(pool, route, "wamid.out")  # an inbound message with that id is not a reply

    assert _report(pool, MessageStatus.READ) is False


# --- listing -------------------------------------------------------------------------------------


def _list(pool: ConnectionPool, user_id: str, **query: Any) -> tuple[list[int], int | None]:
    with PostgresUnitOfWork(pool) as uow:
        page = uow.messages.list(user_id, MessageQuery(**query))
    return [m.message_id for m in page.items], page.next_cursor


def test_listing_pages_newest_first_with_a_keyset_cursor(pool: ConnectionPool, route: Route) -> None:
    ids = [_record(pool, route, f"wamid.{n}").message_id for n in range(5)]

    first, cursor = _list(pool, "user-1", limit=2)
    second, cursor_2 = _list(pool, "user-1", limit=2, cursor=cursor)
    last, cursor_3 = _list(pool, "user-1", limit=2, cursor=cursor_2)

    assert [first, second, last] == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert cursor_3 is None


def test_a_full_last_page_has_no_next_cursor(pool: ConnectionPool, route: Route) -> None:
    for n in range(2):
        _record(pool, route, f"wamid.{n}")

    assert _list(pool, "user-1", limit=2)[1] is None


def test_listing_never_shows_another_tenants_messages(pool: ConnectionPool, route: Route) -> None:
    other = seed_route(pool, "user-2", "pn-9")
    mine = _record(pool, route, "wamid.1")
    theirs = _record(pool, other, "wamid.2")

    assert _list(pool, "user-1")[0] == [mine.message_id]
    assert _list(pool, "user-1", phone_number_id="pn-9")[0] == []
    assert _list(pool, "user-1", conversation_id=theirs.conversation_id)[0] == []
    assert _list(pool, "user-2")[0] == [theirs.message_id]


def test_listing_filters_by_channel_conversation_customer_status_and_time(pool: ConnectionPool, route: Route) -> None:
    second_channel = seed_route(pool, "user-1", "pn-2")
    ann = _record(pool, route, "wamid.1", customer_id="ann")
    bob = _record(pool, route, "wamid.2", customer_id="bob")
    skipped = _record(pool, route, "wamid.3", customer_id="bob", text=None, skip_reason="sticker")
    elsewhere = _record(pool, second_channel, "wamid.4", customer_id="ann")
    with PostgresUnitOfWork(pool) as uow:
        late = uow.messages.record_inbound(route, an_inbound(route, "wamid.5", customer_id="ann"), NOW + minutes(30))
        uow.commit()

    assert _list(pool, "user-1", phone_number_id="pn-2")[0] == [elsewhere.message_id]
    assert _list(pool, "user-1", conversation_id=bob.conversation_id)[0] == [skipped.message_id, bob.message_id]
    assert _list(pool, "user-1", customer_id="ann")[0] == [late.message_id, elsewhere.message_id, ann.message_id]
    assert _list(pool, "user-1", status=MessageStatus.SKIPPED)[0] == [skipped.message_id]
    assert _list(pool, "user-1", since=NOW + minutes(1))[0] == [late.message_id]
    assert _list(pool, "user-1", until=NOW + minutes(1), customer_id="bob")[0] == [skipped.message_id, bob.message_id]


def test_listing_in_sequence_order_pages_through_a_conversation(pool: ConnectionPool, route: Route) -> None:
    recorded = [_record(pool, route, f"wamid.{n}") for n in range(3)]
    conversation_id = recorded[0].conversation_id

    first, cursor = _list(pool, "user-1", conversation_id=conversation_id, order="sequence", limit=2)
    rest, end = _list(pool, "user-1", conversation_id=conversation_id, order="sequence", limit=2, cursor=cursor)

    assert first + rest == [r.message_id for r in recorded]
    assert (cursor, end) == (2, None)


def test_sequence_order_needs_a_conversation(pool: ConnectionPool, route: Route) -> None:
    with pytest.raises(ValidationFailed) as raised:
        _list(pool, "user-1", order="sequence")
    assert raised.value.field == "order"
