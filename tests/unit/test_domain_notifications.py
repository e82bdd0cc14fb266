"""Notifications' rules, with plain objects: what the business is told about a lead, its credits, its
channels and its waiting customers, and which key keeps the same fact from being told twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attrs import evolve

from domain.errors import ValidationFailed
from domain.extraction import Extraction, HotLeadThresholds, LeadEvent, LeadFields, lead_events
from domain.notifications import (
    CREDITS_LOW_MAX,
    DEFAULT_CREDITS_LOW_AT,
    BalanceFacts,
    NewNotification,
    Notification,
    NotificationKind,
    NotificationSettings,
    SendFailures,
    WaitingConversation,
    about_balance,
    about_channel,
    about_waiting,
    from_extraction,
)
from tests.unit.domain_builders import CHANNEL, NOW, USER

SETTINGS = NotificationSettings(USER)
DEMO = "2026-03-03T15:00:00+01:00"
HOT_AND_BOOKED: dict[str, object] = {
    "name": "Ana Silva",
    "email": "ana@shop.example",
    "company": "Silva & Filhos",
    "urgency": 3,
    "budget": 3,
    "fit": 3,
    "engagement": 2,
    "demo_datetime": DEMO,
    "smart_notification": "Ana asks whether onboarding is included.",
}


def an_extraction(through: int = 5, conversation_id: int = 7, **answer: object) -> Extraction:
    fields = LeadFields.from_answer({**HOT_AND_BOOKED, **answer}, NOW)
    return Extraction(
        extraction_id=through * 10,
        user_id=USER,
        conversation_id=conversation_id,
        phone_number_id=CHANNEL,
        through_sequence_no=through,
        fields=fields,
        created_at=NOW + timedelta(minutes=through),
    )


def told(previous: Extraction | None, current: Extraction) -> dict[NotificationKind, NewNotification]:
    events = lead_events(previous.fields if previous else None, current.fields, SETTINGS.hot_lead)
    return {n.kind: n for n in from_extraction(previous, current, SETTINGS, events)}


# --- a new reading of a lead ----------------------------------------------------------------------


def test_each_lead_event_is_one_notification_titled_for_the_sales_team() -> None:
    first = an_extraction()

    notes = told(None, first)

    assert {kind: n.title for kind, n in notes.items()} == {
        NotificationKind.SMART_NOTIFICATION: "Ana asks whether onboarding is included.",
        NotificationKind.DEMO_BOOKED: f"Ana Silva booked a demo for {DEMO}",
        NotificationKind.HOT_LEAD: "Hot lead: Ana Silva",
    }
    for note in notes.values():
        assert (note.user_id, note.conversation_id, note.phone_number_id) == (USER, 7, CHANNEL)
        assert note.created_at == first.created_at


def test_a_lead_notification_carries_the_lead_for_a_program_to_read() -> None:
    notes = told(None, an_extraction())

    lead = {
        "extraction_id": 50,
        "name": "Ana Silva",
        "email": "ana@shop.example",
        "company": "Silva & Filhos",
        "urgency": 3,
        "budget": 3,
        "fit": 3,
        "engagement": 2,
    }
    assert notes[NotificationKind.SMART_NOTIFICATION].data == {
        **lead,
        "smart_notification": "Ana asks whether onboarding is included.",
    }
    assert notes[NotificationKind.DEMO_BOOKED].data == {**lead, "demo_datetime": DEMO}
    assert notes[NotificationKind.HOT_LEAD].data == {**lead, "thresholds": {"urgency": 3, "budget": 2, "fit": 3}}


def test_a_moved_demo_names_the_new_time_and_keeps_the_old_one() -> None:
    moved = an_extraction(through=9, demo_datetime="2026-03-04T10:00:00+01:00")

    note = told(an_extraction(), moved)[NotificationKind.DEMO_MOVED]

    assert note.title == "Ana Silva moved the demo to 2026-03-04T10:00:00+01:00"
    assert note.data["demo_datetime"] == "2026-03-04T10:00:00+01:00"
    assert note.data["previous_demo_datetime"] == DEMO


def test_a_lead_without_name_is_named_by_its_e_mail_and_without_either_by_its_conversation() -> None:
    no_name = told(None, an_extraction(name=None))
    nobody = told(None, an_extraction(name=None, email=None))

    assert no_name[NotificationKind.HOT_LEAD].title == "Hot lead: ana@shop.example"
    assert nobody[NotificationKind.HOT_LEAD].title == "Hot lead: conversation 7"


def test_the_same_reading_stored_twice_gives_the_same_keys_so_it_is_told_once() -> None:
    once = told(None, an_extraction())
    again = told(None, an_extraction())

    assert {n.dedup_key for n in once.values()} == {n.dedup_key for n in again.values()}
    assert once[NotificationKind.HOT_LEAD].dedup_key == "hot_lead:7:5"


def test_every_event_conversation_and_reading_has_its_own_key() -> None:
    keys = [
        n.dedup_key
        for extraction in (an_extraction(), an_extraction(through=6), an_extraction(conversation_id=8))
        for n in told(None, extraction).values()
    ]

    assert len(keys) == 9
    assert len(set(keys)) == 9


def test_no_event_no_notification() -> None:
    assert from_extraction(an_extraction(), an_extraction(through=6), SETTINGS, ()) == ()


# --- credits --------------------------------------------------------------------------------------


def balance(available: int, *, refused: int = 0, top_up_id: int = 3, low_at: int = 50) -> BalanceFacts:
    return BalanceFacts(USER, available, low_at, top_up_id, refused)


def test_a_message_left_unanswered_for_want_of_credits_is_told_as_exhausted_only() -> None:
    (note,) = about_balance(balance(0, refused=2), NOW)

    assert note.kind is NotificationKind.CREDITS_EXHAUSTED
    assert note.title == "Credits exhausted: 2 message(s) left unanswered"
    assert note.data == {"available": 0, "credits_low_at": 50, "unanswered": 2}
    assert (note.dedup_key, note.created_at, note.conversation_id) == (f"credits_exhausted:{USER}:3", NOW, None)


@pytest.mark.parametrize("available", [50, 49, 0])
def test_a_balance_at_or_under_the_threshold_is_told_as_low(available: int) -> None:
    (note,) = about_balance(balance(available), NOW)

    assert note.kind is NotificationKind.CREDITS_LOW
    assert note.title == f"Credits running low: {available} left"
    assert note.data == {"available": available, "credits_low_at": 50}
    assert note.dedup_key == f"credits_low:{USER}:3"


def test_a_balance_above_the_threshold_is_not_told() -> None:
    assert about_balance(balance(51), NOW) == ()


def balance_key(facts: BalanceFacts) -> str:
    (note,) = about_balance(facts, NOW)
    return note.dedup_key


def test_after_a_top_up_low_and_exhausted_can_be_told_again() -> None:
    assert balance_key(balance(10, top_up_id=3)) != balance_key(balance(10, top_up_id=4))
    assert balance_key(balance(0, refused=1, top_up_id=0)) != balance_key(balance(0, refused=1, top_up_id=4))


def test_more_messages_left_unanswered_within_one_top_up_are_not_told_again() -> None:
    assert balance_key(balance(0, refused=1)) == balance_key(balance(0, refused=5))


# --- channels -------------------------------------------------------------------------------------


def failures(by_code: dict[str, int], at: datetime = NOW) -> SendFailures:
    return SendFailures(USER, CHANNEL, by_code, at)


def test_an_expired_token_is_a_failing_channel_at_once() -> None:
    (note,) = about_channel(failures({"190": 1}))

    assert note.kind is NotificationKind.CHANNEL_FAILING
    assert note.title == f"Channel {CHANNEL} is failing: its access token expired or was revoked (Graph error 190)"
    assert note.data == {"reason": "token_expired", "failures": {"190": 1}}
    assert (note.phone_number_id, note.conversation_id, note.created_at) == (CHANNEL, None, NOW)
    assert note.dedup_key == f"channel_failing:{CHANNEL}:token_expired:2026-03-01"


def test_a_reply_outside_the_window_is_a_failing_channel_at_once() -> None:
    (note,) = about_channel(failures({"131047": 1, "": 1}))

    assert note.data["reason"] == "outside_window"
    assert "131047" in note.title


def test_three_failed_sends_of_any_other_kind_are_a_failing_channel_and_two_are_not() -> None:
    (note,) = about_channel(failures({"131026": 2, "": 1}))

    assert note.data == {"reason": "repeated_failures", "failures": {"131026": 2, "": 1}}
    assert note.title == f"Channel {CHANNEL} is failing: 3 sends failed in the last 15 minutes"
    assert about_channel(failures({"131026": 1, "": 1})) == ()
    assert about_channel(failures({})) == ()


def test_a_named_reason_is_told_instead_of_repeated_failures_and_two_named_reasons_both() -> None:
    reasons = [n.data["reason"] for n in about_channel(failures({"190": 2, "131047": 1, "500": 4}))]

    assert reasons == ["token_expired", "outside_window"]


def test_a_channel_failing_for_the_same_reason_is_told_once_a_day() -> None:
    morning = about_channel(failures({"190": 1}, datetime(2026, 3, 1, 8, 0, tzinfo=UTC)))[0]
    evening = about_channel(failures({"190": 5}, datetime(2026, 3, 1, 23, 59, tzinfo=UTC)))[0]
    next_day = about_channel(failures({"190": 1}, datetime(2026, 3, 2, 0, 1, tzinfo=UTC)))[0]
    other_channel = about_channel(evolve(failures({"190": 1}), phone_number_id="pn_2"))[0]

    assert morning.dedup_key == evening.dedup_key
    assert next_day.dedup_key != morning.dedup_key
    assert other_channel.dedup_key != morning.dedup_key


# --- a customer waiting for a person --------------------------------------------------------------


def waiting(first_held: int = 40, held: int = 2) -> WaitingConversation:
    return WaitingConversation(USER, 7, CHANNEL, first_held, held, NOW)


def test_a_customer_waiting_for_a_person_is_told_with_how_many_messages_wait() -> None:
    note = about_waiting(waiting())

    assert note.kind is NotificationKind.WAITING_FOR_HUMAN
    assert note.title == "A customer is waiting for a person: 2 unanswered message(s)"
    assert (note.conversation_id, note.phone_number_id, note.created_at) == (7, CHANNEL, NOW)
    assert note.data == {"held": 2, "waiting_since": "2026-03-01T12:00:00+00:00"}


def test_one_wait_is_told_once_however_many_messages_join_it_and_the_next_wait_again() -> None:
    assert about_waiting(waiting(held=2)).dedup_key == about_waiting(waiting(held=5)).dedup_key
    assert about_waiting(waiting(first_held=40)).dedup_key != about_waiting(waiting(first_held=52)).dedup_key


# --- reading a notification -----------------------------------------------------------------------


def a_notification(**changes: Any) -> Notification:
    new = told(None, an_extraction())[NotificationKind.DEMO_BOOKED]
    return evolve(Notification.stored(101, new), **changes)


def test_a_stored_notification_is_unread() -> None:
    note = a_notification()

    assert (note.notification_id, note.read, note.read_at) == (101, False, None)


def test_marking_read_keeps_the_first_time_it_was_read() -> None:
    read = a_notification().mark(read=True, now=NOW)

    assert (read.read, read.read_at) == (True, NOW)
    assert read.mark(read=True, now=NOW + timedelta(hours=1)).read_at == NOW


def test_marking_unread_clears_the_time_it_was_read() -> None:
    unread = a_notification(read_at=NOW).mark(read=False, now=NOW + timedelta(hours=1))

    assert (unread.read, unread.read_at) == (False, None)
    assert a_notification().mark(read=False, now=NOW).read_at is None


def test_a_webhook_receiver_gets_the_notification_as_plain_json_values() -> None:
    assert a_notification().as_event() == {
        "notification_id": 101,
        "kind": "demo_booked",
        "title": f"Ana Silva booked a demo for {DEMO}",
        "created_at": "2026-03-01T12:05:00+00:00",
        "conversation_id": 7,
        "phone_number_id": CHANNEL,
        "data": {
            "extraction_id": 50,
            "name": "Ana Silva",
            "email": "ana@shop.example",
            "company": "Silva & Filhos",
            "urgency": 3,
            "budget": 3,
            "fit": 3,
            "engagement": 2,
            "demo_datetime": DEMO,
        },
    }


def test_the_kind_of_a_notification_is_the_name_of_the_lead_event() -> None:
    assert {str(NotificationKind(event)) for event in (LeadEvent.DEMO_BOOKED, LeadEvent.HOT_LEAD)} == {
        "demo_booked",
        "hot_lead",
    }


# --- a business's settings ------------------------------------------------------------------------


def test_the_default_settings_are_the_default_hot_lead_and_fifty_credits() -> None:
    assert SETTINGS.hot_lead == HotLeadThresholds()
    assert SETTINGS.credits_low_at == DEFAULT_CREDITS_LOW_AT == 50


def test_settings_change_only_what_is_given() -> None:
    lower = SETTINGS.change(credits_low_at=0)
    stricter = lower.change(hot_lead={"engagement": 3})

    assert (lower.credits_low_at, lower.hot_lead) == (0, HotLeadThresholds())
    assert (stricter.credits_low_at, stricter.hot_lead.minimums) == (0, {"engagement": 3})
    assert SETTINGS.change() == SETTINGS


@pytest.mark.parametrize("low_at", [-1, CREDITS_LOW_MAX + 1, True, 10.0, "50"])
def test_the_credits_threshold_is_a_whole_number_in_range(low_at: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        SETTINGS.change(credits_low_at=low_at)

    assert refused.value.field == "credits_low_at"
    assert SETTINGS.change(credits_low_at=CREDITS_LOW_MAX).credits_low_at == CREDITS_LOW_MAX


def test_hot_lead_thresholds_are_checked_when_changed() -> None:
    with pytest.raises(ValidationFailed) as refused:
        SETTINGS.change(hot_lead={"urgency": 4})

    assert refused.value.field == "hot_lead.urgency"
