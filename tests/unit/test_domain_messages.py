"""Rules of messages: delivery statuses, reply splitting, the service window, ordering scope keys."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.messages import (
    InboundMessage,
    MessageStatus,
    OrderingScope,
    ScopeKey,
    next_delivery_status,
    split_text,
    within_service_window,
)

S = MessageStatus


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (S.PENDING, S.SENT, S.SENT),
        (S.SENDING, S.SENT, S.SENT),
        (S.SENT, S.DELIVERED, S.DELIVERED),
        (S.DELIVERED, S.READ, S.READ),
        (S.SENT, S.READ, S.READ),  # 'delivered' never came, or comes later
        (S.READ, S.PLAYED, S.PLAYED),
        (S.DELIVERED, S.SENT, None),
        (S.READ, S.DELIVERED, None),
        (S.READ, S.SENT, None),
        (S.PLAYED, S.READ, None),
        (S.SENT, S.SENT, None),
        (S.SENDING, S.FAILED, S.FAILED),
        (S.SENT, S.FAILED, S.FAILED),
        (S.DELIVERED, S.FAILED, None),  # it arrived: the failure is only a note
        (S.READ, S.FAILED, None),
        (S.FAILED, S.FAILED, None),
        (S.FAILED, S.SENT, None),
        (S.FAILED, S.DELIVERED, S.DELIVERED),  # a late 'delivered' proves it arrived after all
        (S.FAILED, S.READ, S.READ),
        (S.SENT, S.RECEIVED, None),  # not a delivery status at all
    ],
)
def test_next_delivery_status(current: MessageStatus, reported: MessageStatus, expected: MessageStatus | None) -> None:
    assert next_delivery_status(current, reported) == expected


def test_delivery_status_never_moves_backwards_whatever_the_order_of_reports() -> None:
    ladder = [S.SENT, S.DELIVERED, S.READ, S.PLAYED]
    for current_rank, current in enumerate(ladder):
        for reported_rank, reported in enumerate(ladder):
            moved_to = next_delivery_status(current, reported)
            assert moved_to == (reported if reported_rank > current_rank else None), (current, reported)


def _words(pieces: list[str]) -> str:
    return "".join("".join(piece.split()) for piece in pieces)


def test_split_text_keeps_a_short_text_whole() -> None:
    assert split_text("  Hello there!  ", 4096) == ["Hello there!"]


def test_split_text_of_nothing_is_no_pieces() -> None:
    assert split_text(" \n\n ", 10) == []


def test_split_text_cuts_at_a_paragraph_break() -> None:
    first, second = "a" * 30, "b" * 30

    assert split_text(f"{first}\n\n{second}", 40) == [first, second]


def test_split_text_cuts_at_a_line_break() -> None:
    first, second = "a" * 30, "b" * 30

    assert split_text(f"{first}\n{second}", 40) == [first, second]


def test_split_text_cuts_at_a_word_break() -> None:
    text = "one two three four five six seven eight nine ten"

    pieces = split_text(text, 15)

    assert all(len(piece) <= 15 for piece in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(piece == piece.strip() for piece in pieces)


def test_split_text_cuts_a_word_longer_than_the_limit_hard() -> None:
    text = "x" * 100

    assert split_text(text, 40) == ["x" * 40, "x" * 40, "x" * 20]


def test_split_text_does_not_cut_at_a_break_near_the_start_leaving_tiny_pieces() -> None:
    text = "ab " + "c" * 60

    pieces = split_text(text, 40)

    assert pieces[0] == "ab " + "c" * 37
    assert _words(pieces) == _words([text])


def test_split_text_prefers_a_paragraph_break_to_a_later_word_break() -> None:
    paragraph = "First paragraph that ends here."
    following = "Second paragraph is long enough to need another message entirely."

    pieces = split_text(f"{paragraph}\n\n{following}", 50)

    assert pieces[0] == paragraph


@pytest.mark.parametrize("seed", range(20))
def test_split_text_never_exceeds_the_limit_and_loses_no_words(seed: int) -> None:
    rng = random.Random(seed)
    separators = [" ", " ", " ", "\n", "\n\n"]
    words = ["".join(rng.choices("abcdefgh", k=rng.randint(1, 25))) for _ in range(rng.randint(1, 300))]
    text = "".join(word + rng.choice(separators) for word in words)
    limit = rng.randint(5, 200)

    pieces = split_text(text, limit)

    assert pieces
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert _words(pieces) == _words([text])


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "inside"),
    [
        (timedelta(0), True),
        (timedelta(hours=23, minutes=59), True),
        (timedelta(hours=23, minutes=59, seconds=59), True),
        (timedelta(hours=24), False),
        (timedelta(hours=30), False),
    ],
)
def test_service_window_is_24_hours_after_the_customers_last_message(ago: timedelta, inside: bool) -> None:
    assert within_service_window(NOW - ago, NOW) is inside


def test_no_customer_message_means_no_service_window() -> None:
    assert within_service_window(None, NOW) is False


@pytest.mark.parametrize(
    ("key", "kind", "value"),
    [
        ("conversation:42", OrderingScope.CONVERSATION, "42"),
        ("channel:106540352242922", OrderingScope.PHONE_NUMBER, "106540352242922"),
        ("channel:wc:odd:id", OrderingScope.PHONE_NUMBER, "wc:odd:id"),
    ],
)
def test_scope_key_parses_and_prints_back_the_same(key: str, kind: OrderingScope, value: str) -> None:
    scope = ScopeKey.parse(key)

    assert (scope.kind, scope.value) == (kind, value)
    assert str(scope) == key


@pytest.mark.parametrize("ordering", list(OrderingScope))
def test_ordering_scope_keys_are_parseable(ordering: OrderingScope) -> None:
    key = ordering.key(conversation_id=7, phone_number_id="pn_1")

    assert ScopeKey.parse(key).kind is ordering
    assert str(ScopeKey.parse(key)) == key


def test_conversation_and_phone_number_scopes_name_different_things() -> None:
    assert OrderingScope.CONVERSATION.key(conversation_id=7, phone_number_id="pn_1") == "conversation:7"
    assert OrderingScope.PHONE_NUMBER.key(conversation_id=7, phone_number_id="pn_1") == "channel:pn_1"


@pytest.mark.parametrize("key", ["", "conversation", "conversation:", "chat:1", ":1", "phone_number:pn_1"])
def test_scope_key_rejects_what_is_not_a_scope(key: str) -> None:
    with pytest.raises(ValueError, match="not an ordering scope key"):
        ScopeKey.parse(key)


def _inbound(text: str | None, skip_reason: str | None) -> InboundMessage:
    return InboundMessage(
        phone_number_id="pn",
        platform_message_id="wamid.1",
        customer_id="1",
        customer_name=None,
        content_type="text",
        text=text,
        skip_reason=skip_reason,
        sent_at=NOW,
        raw={},
    )


def test_only_a_text_without_a_skip_reason_is_answerable() -> None:
    assert _inbound("hi", None).answerable
    assert not _inbound(None, "image messages are not answered").answerable
    assert not _inbound("caption", "image messages are not answered").answerable
