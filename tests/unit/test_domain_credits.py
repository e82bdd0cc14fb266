"""Rules of credits: a hold before every AI call, settled or released after it, never negative."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.credits import AI_TURN, MAX_TOP_UP, CreditMovement, LedgerKind, check_top_up
from domain.errors import InsufficientCredits, InvalidTransition, ValidationFailed
from tests.unit.domain_builders import NOW, USER, credits

LATER = NOW + timedelta(seconds=1)


def test_available_credits_are_the_balance_less_what_is_held() -> None:
    assert credits(10, 3).available == 7


def test_a_hold_takes_what_is_available_and_no_more() -> None:
    account = credits(10, 3)

    assert account.apply(account.hold(7), LATER).available == 0
    with pytest.raises(InsufficientCredits):
        account.hold(8)


def test_nothing_can_be_held_from_an_empty_balance() -> None:
    with pytest.raises(InsufficientCredits):
        credits(0).hold(1)


def test_a_hold_settled_leaves_the_balance_and_the_hold_together_and_is_written_to_the_ledger() -> None:
    account = credits(10)
    held = account.apply(account.hold(1), NOW)

    settle = CreditMovement.settle(USER, 1, turn_id=7)
    settled = held.apply(settle, LATER)

    assert (held.balance, held.reserved) == (10, 1)
    assert (settled.balance, settled.reserved, settled.updated_at) == (9, 0, LATER)
    assert (settle.ledger, settle.balance, settle.reason, settle.turn_id) == (LedgerKind.CHARGE, -1, AI_TURN, 7)


def test_a_hold_released_gives_the_credits_back_untouched_and_is_not_in_the_ledger() -> None:
    held = credits(10, 1)

    release = CreditMovement.release(USER, 1)

    assert (held.apply(release, LATER).balance, held.apply(release, LATER).reserved) == (10, 0)
    assert release.ledger is None


def test_more_than_is_held_can_be_neither_released_nor_settled() -> None:
    held = credits(10, 1)

    with pytest.raises(InvalidTransition):
        held.apply(CreditMovement.release(USER, 2), LATER)
    with pytest.raises(InvalidTransition):
        held.apply(CreditMovement.settle(USER, 2, turn_id=7), LATER)


def test_a_hold_raced_by_another_that_took_the_last_credit_is_refused() -> None:
    read_before = credits(1)
    first_hold = read_before.hold(1)
    second_hold = read_before.hold(1)  # decided on the same, now stale, figures

    after_first = read_before.apply(first_hold, NOW)

    with pytest.raises(InsufficientCredits):
        after_first.apply(second_hold, LATER)


def test_a_top_up_adds_to_the_balance_and_is_written_to_the_ledger() -> None:
    top_up = CreditMovement.top_up(USER, 50, "welcome")

    assert credits(10, 2).apply(top_up, LATER).balance == 60
    assert (top_up.ledger, top_up.balance, top_up.reserved, top_up.reason) == (LedgerKind.TOP_UP, 50, 0, "welcome")


def test_a_movement_of_another_tenant_is_never_applied() -> None:
    with pytest.raises(ValueError, match="applied to the credits"):
        credits(10).apply(CreditMovement.top_up("usr_other", 5, None), LATER)


@pytest.mark.parametrize("amount", [1, 500, MAX_TOP_UP])
def test_top_up_accepts_positive_whole_amounts(amount: int) -> None:
    assert check_top_up(amount) == amount


@pytest.mark.parametrize("amount", [0, -1, -500, True, False, 1.0, 2.5, "10", None, MAX_TOP_UP + 1, 10**30])
def test_top_up_rejects_what_is_not_a_sensible_positive_whole_amount(amount: object) -> None:
    with pytest.raises(ValidationFailed) as raised:
        CreditMovement.top_up(USER, amount, None)  # type: ignore[arg-type]

    assert raised.value.field == "amount"
