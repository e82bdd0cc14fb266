"""Status updates from the channel move a sent reply forward, never back."""

from __future__ import annotations

import pytest

from domain.messages import DeliveryReport, Message, MessageStatus
from tests.unit.conftest import PHONE_NUMBER_ID, App


@pytest.fixture
def sent_wamid(app: App) -> str:
    app.receive("Hi", wamid="wamid.customer")
    app.drain()
    [sent] = app.sender.sent
    return sent.platform_message_id


def _report(app: App, wamid: str, status: MessageStatus, code: str | None = None, reason: str | None = None) -> bool:
    return app.apply_report(
        DeliveryReport(
            phone_number_id=PHONE_NUMBER_ID,
            platform_message_id=wamid,
            status=status,
            at=app.clock.now(),
            error_code=code,
            error_reason=reason,
        )
    )


def test_statuses_in_order_end_at_read(app: App, sent_wamid: str) -> None:
    for status in [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ]:
        assert _report(app, sent_wamid, status)

    assert app.message(sent_wamid).status is MessageStatus.READ


def test_statuses_out_of_order_still_end_at_read(app: App, sent_wamid: str) -> None:
    for status in [MessageStatus.READ, MessageStatus.SENT, MessageStatus.DELIVERED]:
        assert _report(app, sent_wamid, status)

    assert app.message(sent_wamid).status is MessageStatus.READ


def test_failure_report_marks_an_undelivered_reply_failed_with_the_code(app: App, sent_wamid: str) -> None:
    assert _report(app, sent_wamid, MessageStatus.FAILED, code="131026", reason="Message undeliverable")

    message = app.message(sent_wamid)
    assert (message.status, message.failure_code, message.failure_reason) == (
        MessageStatus.FAILED,
        "131026",
        "Message undeliverable",
    )


def test_failure_after_delivery_keeps_delivered_and_notes_the_error(app: App, sent_wamid: str) -> None:
    _report(app, sent_wamid, MessageStatus.DELIVERED)

    _report(app, sent_wamid, MessageStatus.FAILED, code="131000", reason="Something went wrong")

    message = app.message(sent_wamid)
    assert (message.status, message.failure_code) == (MessageStatus.DELIVERED, "131000")


def test_report_about_an_unknown_message_is_not_applied(app: App, sent_wamid: str) -> None:
    assert not _report(app, "wamid.never-sent", MessageStatus.DELIVERED)


def test_report_naming_a_customers_message_is_not_applied(app: App, sent_wamid: str) -> None:
    assert not _report(app, "wamid.customer", MessageStatus.READ)

    assert app.message("wamid.customer").status is MessageStatus.ANSWERED


def test_a_report_that_loses_a_race_is_decided_again_on_the_winners_state(app: App, sent_wamid: str) -> None:
    save = app.message_store.save_report
    saves: list[MessageStatus] = []

    def another_report_lands_first(before: Message, after: Message) -> bool:
        saves.append(after.status)
        if len(saves) == 1:
            _report(app, sent_wamid, MessageStatus.READ)  # a concurrent webhook request
        return save(before, after)

    app.message_store.save_report = another_report_lands_first  # type: ignore[method-assign]

    assert _report(app, sent_wamid, MessageStatus.DELIVERED)

    assert saves == [MessageStatus.DELIVERED, MessageStatus.READ]  # the second is the concurrent one
    assert app.message(sent_wamid).status is MessageStatus.READ  # 'delivered', decided again, changes nothing


def test_a_report_that_keeps_losing_races_gives_up_without_failing_the_webhook(app: App, sent_wamid: str) -> None:
    app.message_store.save_report = lambda before, after: False  # type: ignore[method-assign]

    assert _report(app, sent_wamid, MessageStatus.DELIVERED)

    assert app.message(sent_wamid).status is MessageStatus.SENT
