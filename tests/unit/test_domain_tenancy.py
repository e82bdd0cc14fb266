"""Rules of tenants and their channels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.channels import ChannelType, policy_for
from domain.errors import ValidationFailed
from domain.tenancy import Channel, User

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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


def test_masked_token_of_a_real_token_shows_only_its_last_four_characters() -> None:
    token = "EAAGm0PX4ZCpsBAKZCZA1Oq2H3mHZB9t5zDz4hjuKZBw8gPZAqYxRZAtB1sXfW4ZCZBCZCJiLSZCgK"

    masked = _channel(token).masked_token

    assert masked == "…ZCgK"


@pytest.mark.parametrize("token", ["", "short", "12345678"])
def test_masked_token_of_a_short_token_shows_nothing_of_it(token: str) -> None:
    assert _channel(token).masked_token == "****"


def test_a_channel_follows_the_policy_of_its_type() -> None:
    assert _channel("token-0123456789").policy == policy_for(ChannelType.WHATSAPP)
