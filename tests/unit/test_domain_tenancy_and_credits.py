"""Rules of tenants, channels and credits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.credits import MAX_TOP_UP, Credits, check_top_up
from domain.errors import ValidationFailed
from domain.tenancy import Channel, ChannelType, User
from domain.turns import TurnStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_available_credits_are_the_balance_less_what_is_reserved() -> None:
    credits = Credits(user_id="usr_1", balance=10, reserved=3, updated_at=NOW)

    assert credits.available == 7
    assert credits.can_reserve(7)
    assert not credits.can_reserve(8)


def test_nothing_can_be_reserved_from_an_empty_balance() -> None:
    assert not Credits(user_id="usr_1", balance=0, reserved=0, updated_at=NOW).can_reserve(1)


@pytest.mark.parametrize("amount", [1, 500, MAX_TOP_UP])
def test_top_up_accepts_positive_whole_amounts(amount: int) -> None:
    assert check_top_up(amount) == amount


@pytest.mark.parametrize("amount", [0, -1, -500, True, False, 1.0, 2.5, "10", None, MAX_TOP_UP + 1, 10**30])
def test_top_up_rejects_what_is_not_a_sensible_positive_whole_amount(amount: object) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_top_up(amount)

    assert raised.value.field == "amount"


@pytest.mark.parametrize(
    ("given", "stored"),
    [("owner@shop.example", "owner@shop.example"), ("  Owner@Shop.Example ", "owner@shop.example")],
)
def test_email_is_trimmed_and_lowercased(given: str, stored: str) -> None:
    assert User.check_email(given) == stored


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "owner",
        "owner@",
        "@shop.example",
        "owner@shop",
        "own er@shop.example",
        "a@b@c.example",
        "x" * 250 + "@shop.example",
    ],
)
def test_invalid_email_is_rejected_naming_the_field(email: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        User.check_email(email)

    assert raised.value.field == "email"


def _channel(token: str) -> Channel:
    return Channel(
        phone_number_id="pn_1",
        user_id="usr_1",
        type=ChannelType.WHATSAPP,
        external_number="+1 555 0100",
        access_token=token,
        display_name=None,
        created_at=NOW,
    )


@pytest.mark.parametrize("length", [1, 8, 9, 12, 40, 220])
def test_masked_token_never_shows_the_token(length: int) -> None:
    token = "".join(chr(ord("A") + i % 26) for i in range(length))

    masked = _channel(token).masked_token

    assert masked
    assert token not in masked


def test_masked_token_of_a_real_token_shows_only_its_ends() -> None:
    token = "EAAGm0PX4ZCpsBAKZCZA1Oq2H3mHZB9t5zDz4hjuKZBw8gPZAqYxRZAtB1sXfW4ZCZBCZCJiLSZCgK"

    masked = _channel(token).masked_token

    assert masked == "EAAG…ZCgK"
    assert token[4:-4] not in masked


@pytest.mark.parametrize("token", ["", "short", "12345678"])
def test_masked_token_of_a_short_token_shows_nothing_of_it(token: str) -> None:
    assert _channel(token).masked_token == "****"


def test_only_awaiting_ai_and_replying_turns_are_open() -> None:
    assert {status for status in TurnStatus if status.open} == {TurnStatus.AWAITING_AI, TurnStatus.REPLYING}
