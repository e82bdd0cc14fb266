"""What no stored text holds, and how a rejected delivery is bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import limits
from domain.rejections import RejectedDelivery

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("a\x00b", "a\ufffdb"),
        ("\x00\x00", "\ufffd\ufffd"),
        ("lone \ud800 high", "lone \ufffd high"),
        ("lone \udc00 low", "lone \ufffd low"),
        ("reversed \udfff\ud800 pair", "reversed \ufffd\ufffd pair"),
    ],
)
def test_nul_and_lone_surrogates_are_replaced_where_they_were(given: str, kept: str) -> None:
    assert limits.storable(given) == kept
    assert len(limits.storable(given)) == len(given)
    assert not limits.is_storable(given) and limits.is_storable(kept)


@pytest.mark.parametrize("text", ["", "plain", "Hej! \U0001f600 äöå — مرحبا", "\t\n\r\x01\x7f", "\U0010ffff\ufeff"])
def test_everything_else_is_kept_as_it_is(text: str) -> None:
    assert limits.storable(text) == text
    assert limits.is_storable(text)


def test_a_rejected_delivery_keeps_the_bytes_as_they_came_with_its_size() -> None:
    body = b'{"text": "\x00\xff\xfe not UTF-8"}'

    rejected = RejectedDelivery.of("malformed_json", body, NOW, phone_number_id="pn_1", platform_message_id="wamid.1")

    assert (rejected.body, rejected.body_size) == (body, len(body))
    assert (rejected.phone_number_id, rejected.platform_message_id) == ("pn_1", "wamid.1")


def test_a_rejected_delivery_keeps_the_head_of_a_large_body_and_says_how_large_it_was() -> None:
    body = b"x" * (limits.REJECTED_DELIVERY_BYTES + 10)

    rejected = RejectedDelivery.of("too large", body, NOW)

    assert rejected.body == body[: limits.REJECTED_DELIVERY_BYTES]
    assert rejected.body_size == limits.REJECTED_DELIVERY_BYTES + 10


def test_a_rejected_deliverys_reason_and_ids_are_cut_to_their_bounds_and_made_storable() -> None:
    rejected = RejectedDelivery.of(
        "why\x00" + "y" * limits.REJECTION_REASON,
        b"{}",
        NOW,
        phone_number_id="p\ud800" * limits.CHANNEL_ID,
        platform_message_id="w" * (limits.PLATFORM_MESSAGE_ID + 1),
        correlation_id="c" * (limits.CORRELATION_ID + 1),
    )

    assert rejected.reason.startswith("why\ufffd") and len(rejected.reason) == limits.REJECTION_REASON
    assert rejected.phone_number_id == "p\ufffd" * (limits.CHANNEL_ID // 2)
    assert rejected.platform_message_id == "w" * limits.PLATFORM_MESSAGE_ID
    assert rejected.correlation_id == "c" * limits.CORRELATION_ID
