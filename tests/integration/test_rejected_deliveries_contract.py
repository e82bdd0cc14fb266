"""The contract of `RejectedDeliveries`, run against the in-memory and the PostgreSQL adapters: what is kept
is what was rejected, byte for byte, whatever the bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from attrs import frozen
from psycopg.rows import dict_row

from adapters.memory.rejected_deliveries import InMemoryRejectedDeliveries
from adapters.postgres.pool import open_pool
from adapters.postgres.rejected_deliveries import PostgresRejectedDeliveries
from adapters.postgres.rows import entity
from application.ports.pipeline import RejectedDeliveries
from domain import limits
from domain.rejections import RejectedDelivery
from tests.support.postgres import NOW


@frozen
class Kept:
    store: RejectedDeliveries
    rows: Callable[[], list[RejectedDelivery]]


def _rows(url: str) -> list[RejectedDelivery]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute(
            "SELECT reason, received_at, body, body_size, phone_number_id, platform_message_id, correlation_id"
            " FROM rejected_deliveries ORDER BY rejection_id"
        ).fetchall()
    return [entity(row, RejectedDelivery) for row in rows]


@pytest.fixture(params=["memory", "postgres"])
def kept(request: pytest.FixtureRequest) -> Iterator[Kept]:
    if request.param == "memory":
        memory = InMemoryRejectedDeliveries()
        yield Kept(memory, lambda: list(memory.recorded))
        return
    url = request.getfixturevalue("clean_database")
    pool = open_pool(url, size=2, timeout_s=10)
    try:
        yield Kept(PostgresRejectedDeliveries(pool), lambda: _rows(url))
    finally:
        pool.close()


def test_a_rejection_is_kept_with_the_delivery_byte_for_byte(kept: Kept) -> None:
    # NUL, bytes that are not UTF-8, an escaped lone surrogate: all of it survives as bytes.
    body = b'{"text": "\x00\xff\xfe", "name": "\\ud800"}'
    rejected = RejectedDelivery.of(
        "too_long:text",
        body,
        NOW,
        phone_number_id="106540352242922",
        platform_message_id="wamid.1",
        correlation_id="corr-1",
    )

    kept.store.record(rejected)

    assert kept.rows() == [rejected]


def test_a_rejection_of_a_whole_body_names_no_channel_or_message(kept: Kept) -> None:
    rejected = RejectedDelivery.of("malformed_json: Expecting value", b"\x00not json", NOW)

    kept.store.record(rejected)

    assert kept.rows() == [rejected]


def test_the_head_of_the_largest_delivery_is_kept_with_its_full_size(kept: Kept) -> None:
    body = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    rejected = RejectedDelivery.of("r" * (limits.REJECTION_REASON + 1), body, NOW)

    kept.store.record(rejected)
    kept.store.record(rejected)

    assert kept.rows() == [rejected, rejected]
    assert len(rejected.body) == limits.REJECTED_DELIVERY_BYTES and rejected.body_size == len(body)
