"""What each channel allows: its service window, how long one message may be and how a reply is split."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from domain.channels import ChannelPolicy, ChannelType, TextUnit, policy_for
from tests.unit.domain_builders import NOW


def _policy(limit: int, unit: TextUnit = TextUnit.CHARACTERS, window: timedelta | None = None) -> ChannelPolicy:
    return ChannelPolicy(
        service_window=window, text_limit=limit, text_unit=unit, read_receipts=False, typing_indicator=False
    )


def _words(pieces: tuple[str, ...]) -> str:
    return "".join("".join(piece.split()) for piece in pieces)


def test_whatsapp_counts_4096_characters_in_a_24_hour_window_with_read_receipts_and_typing() -> None:
    whatsapp = policy_for(ChannelType.WHATSAPP)

    assert (whatsapp.text_limit, whatsapp.text_unit, whatsapp.service_window) == (
        4096,
        TextUnit.CHARACTERS,
        timedelta(hours=24),
    )
    assert whatsapp.read_receipts and whatsapp.typing_indicator


def test_instagram_counts_1000_bytes_of_utf8_in_a_24_hour_window() -> None:
    instagram = policy_for(ChannelType.INSTAGRAM)

    assert (instagram.text_limit, instagram.text_unit, instagram.service_window) == (
        1000,
        TextUnit.UTF8_BYTES,
        timedelta(hours=24),
    )


def test_web_chat_has_no_window_and_its_read_receipt_is_the_typing_indicator() -> None:
    webchat = policy_for(ChannelType.WEBCHAT)

    assert webchat.service_window is None
    assert webchat.window_open(None, NOW)
    assert webchat.read_receipts and webchat.typing_indicator


# --- the service window --------------------------------------------------------------------------


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
def test_the_window_is_24_hours_after_the_customers_last_message(ago: timedelta, inside: bool) -> None:
    assert policy_for(ChannelType.WHATSAPP).window_open(NOW - ago, NOW) is inside


def test_no_customer_message_means_no_window() -> None:
    assert policy_for(ChannelType.WHATSAPP).window_open(None, NOW) is False


# --- splitting a long reply ----------------------------------------------------------------------


def test_a_short_text_is_sent_whole() -> None:
    assert _policy(4096).split("  Hello there!  ") == ("Hello there!",)


def test_nothing_is_no_message() -> None:
    assert _policy(10).split(" \n\n ") == ()


def test_a_long_text_is_cut_at_a_paragraph_break() -> None:
    first, second = "a" * 30, "b" * 30

    assert _policy(40).split(f"{first}\n\n{second}") == (first, second)


def test_a_long_text_is_cut_at_a_line_break() -> None:
    first, second = "a" * 30, "b" * 30

    assert _policy(40).split(f"{first}\n{second}") == (first, second)


def test_a_long_text_is_cut_at_a_word_break() -> None:
    text = "one two three four five six seven eight nine ten"

    pieces = _policy(15).split(text)

    assert all(len(piece) <= 15 for piece in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(piece == piece.strip() for piece in pieces)


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    assert _policy(40).split("x" * 100) == ("x" * 40, "x" * 40, "x" * 20)


def test_a_break_near_the_start_is_not_used_to_leave_a_tiny_piece() -> None:
    text = "ab " + "c" * 60

    pieces = _policy(40).split(text)

    assert pieces[0] == "ab " + "c" * 37
    assert _words(pieces) == _words((text,))


def test_a_paragraph_break_is_preferred_to_a_later_word_break() -> None:
    paragraph = "First paragraph that ends here."
    following = "Second paragraph is long enough to need another message entirely."

    assert _policy(50).split(f"{paragraph}\n\n{following}")[0] == paragraph


@pytest.mark.parametrize("seed", range(20))
def test_no_piece_exceeds_the_limit_and_no_word_is_lost(seed: int) -> None:
    rng = random.Random(seed)
    separators = [" ", " ", " ", "\n", "\n\n"]
    words = ["".join(rng.choices("abcdefgh", k=rng.randint(1, 25))) for _ in range(rng.randint(1, 300))]
    text = "".join(word + rng.choice(separators) for word in words)
    limit = rng.randint(5, 200)

    pieces = _policy(limit).split(text)

    assert pieces
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert _words(pieces) == _words((text,))


def test_a_byte_limit_counts_utf8_bytes_not_characters() -> None:
    text = "é" * 600  # 600 characters, 1,200 bytes

    pieces = policy_for(ChannelType.INSTAGRAM).split(text)

    assert [len(piece.encode()) for piece in pieces] == [1000, 200]
    assert "".join(pieces) == text


def test_a_byte_limit_never_cuts_inside_a_character() -> None:
    text = "🙂" * 300  # four bytes each: 1,200 bytes

    pieces = policy_for(ChannelType.INSTAGRAM).split(text)

    assert [len(piece.encode()) for piece in pieces] == [1000, 200]
    assert "".join(pieces) == text


def test_non_latin_text_is_cut_between_words_within_the_byte_limit() -> None:
    words = ["Привет", "как", "дела", "сегодня", "日本語", "のテキスト", "🙂👍"] * 40
    text = " ".join(words)

    pieces = policy_for(ChannelType.INSTAGRAM).split(text)

    assert len(pieces) > 1
    assert all(len(piece.encode("utf-8")) <= 1000 for piece in pieces)
    assert " ".join(pieces).split() == words


@pytest.mark.parametrize("seed", range(10))
def test_mixed_scripts_and_emoji_never_exceed_the_byte_limit_or_lose_a_word(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "abcdéñøßжщ日本語テ🙂🎉👍🏽"
    words = ["".join(rng.choices(alphabet, k=rng.randint(1, 30))) for _ in range(rng.randint(1, 200))]
    text = " ".join(words)
    limit = rng.randint(20, 300)

    pieces = _policy(limit, TextUnit.UTF8_BYTES).split(text)

    assert all(0 < len(piece.encode("utf-8")) <= limit for piece in pieces)
    assert _words(pieces) == _words((text,))
