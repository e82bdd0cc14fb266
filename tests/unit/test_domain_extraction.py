"""Lead extraction's rules, with plain objects and a passed-in `now`: when a conversation is due, what
of the AI's answer is kept, how the conversation reads to the AI, and which changes are news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from attrs import evolve

from domain.errors import ValidationFailed
from domain.extraction import (
    CLAIM_FOR,
    FIELDS,
    MAX_ATTEMPTS,
    NOT_STATED,
    HotLeadThresholds,
    LeadActivity,
    LeadEvent,
    LeadFields,
    TranscriptLine,
    lead_events,
    transcript_text,
)
from tests.unit.domain_builders import CHANNEL, NOW, USER

INTERVAL = timedelta(minutes=10)
SECOND = timedelta(seconds=1)


def an_activity(**changes: Any) -> LeadActivity:
    """A conversation with five messages, none extracted, quiet since NOW."""
    activity = LeadActivity(
        conversation_id=7,
        user_id=USER,
        phone_number_id=CHANNEL,
        agent_id="agt_1",
        last_message_at=NOW,
        last_sequence_no=5,
    )
    return evolve(activity, **changes)


def a_new_message(activity: LeadActivity, at: datetime) -> LeadActivity:
    return evolve(activity, last_message_at=at, last_sequence_no=activity.last_sequence_no + 1)


# --- when a conversation is due -------------------------------------------------------------------


def test_a_conversation_quiet_for_exactly_the_interval_is_due_and_one_second_less_is_not() -> None:
    activity = an_activity()

    assert activity.is_due(NOW + INTERVAL, INTERVAL)
    assert not activity.is_due(NOW + INTERVAL - SECOND, INTERVAL)


def test_a_conversation_without_messages_since_its_last_extraction_is_not_due() -> None:
    assert not an_activity(extracted_through=5).is_due(NOW + timedelta(days=1), INTERVAL)


def test_a_conversation_taken_by_a_worker_is_not_due_until_the_claim_runs_out() -> None:
    claimed = an_activity().claim(NOW + INTERVAL)
    claim_ends = NOW + INTERVAL + CLAIM_FOR

    assert claimed.claimed_until == claim_ends
    assert not claimed.is_due(claim_ends - SECOND, INTERVAL)
    assert claimed.is_due(claim_ends, INTERVAL)  # its worker died: another takes it


def test_a_conversation_whose_tries_are_used_up_is_not_due() -> None:
    assert not an_activity(attempts=MAX_ATTEMPTS).is_due(NOW + timedelta(days=1), INTERVAL)
    assert an_activity(attempts=MAX_ATTEMPTS - 1).is_due(NOW + timedelta(days=1), INTERVAL)


def test_an_extraction_done_clears_the_claim_the_failed_tries_and_the_failure() -> None:
    failed_twice = an_activity(attempts=2, claimed_until=NOW + timedelta(minutes=5), last_failure="timeout")

    done = failed_twice.extracted(through=5)

    assert (done.extracted_through, done.claimed_until, done.attempts, done.last_failure) == (5, None, 0, None)
    assert not done.is_due(NOW + timedelta(days=1), INTERVAL)
    assert a_new_message(done, NOW + SECOND).is_due(NOW + SECOND + INTERVAL, INTERVAL)


def test_an_older_extraction_finishing_late_never_moves_the_mark_back() -> None:
    assert an_activity(extracted_through=5).extracted(through=3).extracted_through == 5


def test_a_failed_extraction_waits_a_minute_then_twice_as_long_each_time_up_to_an_hour() -> None:
    waits = []
    activity = an_activity()
    for _ in range(MAX_ATTEMPTS - 1):
        activity = activity.failed("timeout", NOW, retryable=True, through=5)
        assert activity.claimed_until is not None
        waits.append(activity.claimed_until - NOW)

    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60)]
    assert (activity.attempts, activity.extracted_through, activity.last_failure) == (MAX_ATTEMPTS - 1, 0, "timeout")
    assert not activity.is_due(NOW + timedelta(minutes=60) - SECOND, INTERVAL)
    assert activity.is_due(NOW + timedelta(minutes=60), INTERVAL)


def test_a_failure_reason_is_kept_short() -> None:
    assert len(an_activity().failed("x" * 5000, NOW, retryable=True, through=5).last_failure or "") == 1000


def test_the_last_try_failing_leaves_the_conversation_until_the_customer_writes_again() -> None:
    activity = an_activity()
    for _ in range(MAX_ATTEMPTS):
        activity = activity.failed("server error", NOW, retryable=True, through=5)

    assert activity.last_failure == "server error"
    assert not activity.is_due(NOW + timedelta(days=30), INTERVAL)
    written_again = a_new_message(activity, NOW + timedelta(days=1))
    assert written_again.is_due(NOW + timedelta(days=1) + INTERVAL, INTERVAL)


def test_a_refusal_is_not_tried_again_until_the_customer_writes_again() -> None:
    refused = an_activity(attempts=1).failed("the prompt does not exist", NOW, retryable=False, through=5)

    assert refused.last_failure == "the prompt does not exist"
    assert not refused.is_due(NOW + timedelta(days=30), INTERVAL)
    written_again = a_new_message(refused, NOW + timedelta(hours=2))
    assert not written_again.is_due(NOW + timedelta(hours=2) + INTERVAL - SECOND, INTERVAL)
    assert written_again.is_due(NOW + timedelta(hours=2) + INTERVAL, INTERVAL)


def test_a_message_that_came_while_the_last_try_ran_is_not_given_up_with_the_others() -> None:
    read_through_5 = an_activity(last_sequence_no=6, last_message_at=NOW + timedelta(minutes=1))

    refused = read_through_5.failed("refused", NOW + timedelta(minutes=2), retryable=False, through=5)

    assert refused.extracted_through == 5
    assert refused.is_due(NOW + timedelta(minutes=1) + INTERVAL, INTERVAL)


def test_tries_start_again_from_a_minute_after_the_customer_writes_again() -> None:
    refused = an_activity().failed("refused", NOW, retryable=False, through=5)
    written_again = a_new_message(refused, NOW + timedelta(hours=2))

    failed_again = written_again.failed("timeout", NOW + timedelta(hours=3), retryable=True, through=6)

    assert (failed_again.attempts, failed_again.claimed_until) == (1, NOW + timedelta(hours=3, minutes=1))


# --- the AI's answer, field by field --------------------------------------------------------------

A_COMPLETE_ANSWER: dict[str, object] = {
    "name": "Ana Silva",
    "email": "ana.silva+leads@shop-example.co.uk",
    "company": "Silva & Filhos",
    "intent": "pricing for 20 seats",
    "urgency": 3,
    "budget": 2,
    "fit": 1,
    "engagement": 3,
    "demo_datetime": "2026-03-03T15:00:00+01:00",
    "smart_notification": "Ana asks whether the price includes onboarding.",
}


def answered(**changes: object) -> LeadFields:
    return LeadFields.from_answer({**A_COMPLETE_ANSWER, **changes}, NOW)


def test_a_complete_valid_answer_is_kept_field_by_field() -> None:
    lead = LeadFields.from_answer(A_COMPLETE_ANSWER, NOW)

    assert lead.missing == {}
    assert lead.as_dict() == {
        **A_COMPLETE_ANSWER,
        "demo_datetime": datetime(2026, 3, 3, 15, 0, tzinfo=timezone(timedelta(hours=1))),
    }
    assert list(lead.as_dict()) == list(FIELDS)


@pytest.mark.parametrize("score", [0, 4, -1, "2", True, False, 2.5, 2.0, [2], {"value": 2}])
def test_a_score_that_is_not_a_whole_number_from_one_to_three_is_missing_and_the_rest_kept(score: object) -> None:
    lead = answered(urgency=score)

    assert lead.urgency is None
    assert lead.missing == {"urgency": f"{score!r} is not a score from 1 to 3"}
    assert (lead.name, lead.budget, lead.fit, lead.engagement) == ("Ana Silva", 2, 1, 3)


@pytest.mark.parametrize(
    "email", ["ana", "ana@", "@shop.example", "ana@shop", "ana maria@shop.example", "ana@shop .example"]
)
def test_an_address_that_is_not_an_e_mail_is_missing_with_the_address_in_the_reason(email: str) -> None:
    lead = answered(email=email)

    assert lead.email is None
    assert lead.missing == {"email": f"{email!r} is not an e-mail address"}
    assert lead.name == "Ana Silva"


def test_an_e_mail_with_spaces_around_it_is_kept_without_them() -> None:
    assert answered(email="  ana@shop.example \n").email == "ana@shop.example"


@pytest.mark.parametrize(
    ("demo", "reason"),
    [
        ("2026-03-03T15:00:00", "'2026-03-03T15:00:00' has no UTC offset: its time zone is unknown"),
        ("2026-03-03", "'2026-03-03' has no UTC offset: its time zone is unknown"),
        ("tomorrow at 3pm", "'tomorrow at 3pm' is not an ISO 8601 date-time"),
        ("03/03/2026 15:00 CET", "'03/03/2026 15:00 CET' is not an ISO 8601 date-time"),
        ("2029-03-03T15:00:00+00:00", "'2029-03-03T15:00:00+00:00' is more than two years from the conversation"),
        ("2023-03-01T15:00:00+00:00", "'2023-03-01T15:00:00+00:00' is more than two years from the conversation"),
    ],
)
def test_a_demo_time_without_its_offset_not_in_iso_or_years_away_is_missing_with_the_reason(
    demo: str, reason: str
) -> None:
    lead = answered(demo_datetime=demo)

    assert lead.demo_datetime is None
    assert lead.missing == {"demo_datetime": reason}
    assert lead.smart_notification == A_COMPLETE_ANSWER["smart_notification"]


def test_a_demo_time_keeps_the_customers_utc_offset() -> None:
    demo = answered(demo_datetime="2026-03-03T09:30:00-05:00").demo_datetime

    assert demo is not None
    assert demo.utcoffset() == timedelta(hours=-5)
    assert demo == datetime(2026, 3, 3, 14, 30, tzinfo=UTC)
    assert answered(demo_datetime="2026-03-03T14:30Z").demo_datetime == demo


def test_a_name_over_a_hundred_characters_is_missing_and_a_hundred_is_kept() -> None:
    assert answered(name="x" * 100).name == "x" * 100
    too_long = answered(name="x" * 101)
    assert too_long.name is None
    assert too_long.missing == {"name": "longer than 100 characters"}


@pytest.mark.parametrize(("value", "type_name"), [(42, "int"), (True, "bool"), (["Ana"], "list"), ({"n": 1}, "dict")])
def test_anything_but_text_where_text_is_expected_is_missing(value: object, type_name: str) -> None:
    lead = answered(company=value)

    assert lead.company is None
    assert lead.missing == {"company": f"{type_name} where text was expected"}


@pytest.mark.parametrize("absent", [None, "", "   \n", "MISSING"])
def test_a_field_null_empty_or_left_out_is_missing_as_not_stated(absent: object) -> None:
    answer = {name: absent for name in FIELDS}
    if absent == "MISSING":
        answer = {}

    lead = LeadFields.from_answer(answer, NOW)

    assert lead.as_dict() == dict.fromkeys(FIELDS)
    assert lead.missing == dict.fromkeys(FIELDS, NOT_STATED)


def test_control_characters_are_taken_out_of_the_text_and_tabs_and_new_lines_are_kept() -> None:
    lead = answered(name="\x00Ana\x1b[31m Silva\x7f\x9b", intent="pricing\tfor\n20 seats")

    assert lead.name == "Ana[31m Silva"
    assert lead.intent == "pricing\tfor\n20 seats"


def test_a_text_of_control_characters_only_is_missing_not_kept_empty() -> None:
    lead = answered(name="\x00\x07", email="\x1b")

    assert (lead.name, lead.email) == (None, None)
    assert lead.missing == {"name": NOT_STATED, "email": NOT_STATED}


def test_names_in_any_script_and_with_emoji_are_kept_as_written() -> None:
    assert answered(name="Ильдар Ахметов 🚀").name == "Ильдар Ахметов 🚀"
    assert answered(name="山田 太郎").name == "山田 太郎"
    assert answered(name="é" * 100).name == "é" * 100  # characters, not bytes


def test_keys_the_answer_should_not_have_are_ignored() -> None:
    lead = LeadFields.from_answer({**A_COMPLETE_ANSWER, "phone": "+351 900", "missing": {"name": "x"}}, NOW)

    assert lead == LeadFields.from_answer(A_COMPLETE_ANSWER, NOW)


def test_only_scores_are_scores() -> None:
    lead = answered(fit=True)

    assert (lead.score("urgency"), lead.score("fit"), lead.score("name")) == (3, None, None)


# --- the conversation as the AI reads it ----------------------------------------------------------


def test_the_transcript_has_one_line_per_message_in_order_with_its_time_and_who_wrote_it() -> None:
    lines = [
        TranscriptLine(1, NOW, "customer", "Hi, can I book a demo tomorrow at 3?"),
        TranscriptLine(2, NOW + timedelta(seconds=50), "ai", "Of course, 15:00 your time?"),
        TranscriptLine(3, NOW + timedelta(minutes=2), "customer", "Yes"),
        TranscriptLine(4, NOW + timedelta(hours=1), "human", "Booked, see you then."),
    ]

    assert transcript_text(lines) == (
        "[2026-03-01T12:00+00:00] Customer: Hi, can I book a demo tomorrow at 3?\n"
        "[2026-03-01T12:00+00:00] Agent: Of course, 15:00 your time?\n"
        "[2026-03-01T12:02+00:00] Customer: Yes\n"
        "[2026-03-01T13:00+00:00] Staff: Booked, see you then."
    )


def test_a_message_without_text_is_left_out_of_the_transcript() -> None:
    lines = [TranscriptLine(1, NOW, "customer", ""), TranscriptLine(2, NOW, "customer", "the photo above")]

    assert transcript_text(lines) == "[2026-03-01T12:00+00:00] Customer: the photo above"
    assert transcript_text([]) == ""


# --- when a lead is hot ---------------------------------------------------------------------------


def test_by_default_a_lead_is_hot_with_urgency_3_budget_2_and_fit_3() -> None:
    thresholds = HotLeadThresholds()

    assert thresholds.minimums == {"urgency": 3, "budget": 2, "fit": 3}
    assert thresholds.is_hot(answered(urgency=3, budget=2, fit=3, engagement=1))
    assert not thresholds.is_hot(answered(urgency=3, budget=1, fit=3))


def test_a_lead_without_a_named_score_is_not_hot_and_a_score_not_named_is_not_looked_at() -> None:
    thresholds = HotLeadThresholds.of({"urgency": 2, "fit": None})

    assert thresholds.minimums == {"urgency": 2}
    assert thresholds.is_hot(answered(urgency=2, fit=None, budget=None))
    assert not thresholds.is_hot(answered(urgency=None))


def test_thresholds_name_scores_only() -> None:
    with pytest.raises(ValidationFailed) as refused:
        HotLeadThresholds.of({"urgency": 2, "name": 1})

    assert refused.value.field == "hot_lead"


@pytest.mark.parametrize("minimum", [0, 4, True, "2", 2.0])
def test_a_threshold_is_1_2_3_or_null(minimum: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        HotLeadThresholds.of({"budget": minimum})

    assert refused.value.field == "hot_lead.budget"


@pytest.mark.parametrize("minimums", [{}, {"urgency": None, "budget": None}])
def test_thresholds_name_at_least_one_score(minimums: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        HotLeadThresholds.of(minimums)

    assert refused.value.field == "hot_lead"


# --- what is news between two readings ------------------------------------------------------------

HOT = {"urgency": 3, "budget": 3, "fit": 3}
COLD = {"urgency": 1, "budget": 1, "fit": 1}
DEFAULTS = HotLeadThresholds()


def test_the_first_reading_of_a_hot_lead_with_a_demo_and_a_note_is_three_events() -> None:
    first = answered(**HOT)

    assert lead_events(None, first, DEFAULTS) == (
        LeadEvent.SMART_NOTIFICATION,
        LeadEvent.DEMO_BOOKED,
        LeadEvent.HOT_LEAD,
    )


def test_the_first_reading_of_a_cold_lead_without_demo_or_note_is_no_event() -> None:
    assert lead_events(None, answered(**COLD, demo_datetime=None, smart_notification=None), DEFAULTS) == ()


def test_the_same_reading_again_is_no_event() -> None:
    reading = answered(**HOT)

    assert lead_events(reading, answered(**HOT), DEFAULTS) == ()


def test_a_changed_smart_notification_is_one_event() -> None:
    before = answered(**HOT)

    after = answered(**HOT, smart_notification="Ana wants the contract by Friday.")

    assert lead_events(before, after, DEFAULTS) == (LeadEvent.SMART_NOTIFICATION,)


def test_a_demo_at_another_time_is_a_demo_moved() -> None:
    before = answered(**COLD)

    after = answered(**COLD, demo_datetime="2026-03-04T10:00:00+01:00")

    assert lead_events(before, after, DEFAULTS) == (LeadEvent.DEMO_MOVED,)


def test_the_same_demo_in_another_offset_is_not_moved() -> None:
    before = answered(**COLD, demo_datetime="2026-03-03T15:00:00+01:00")

    assert lead_events(before, answered(**COLD, demo_datetime="2026-03-03T14:00:00+00:00"), DEFAULTS) == ()


def test_a_demo_booked_after_a_reading_without_one_is_a_demo_booked() -> None:
    before = answered(**COLD, demo_datetime=None)

    assert lead_events(before, answered(**COLD), DEFAULTS) == (LeadEvent.DEMO_BOOKED,)


def test_a_reading_that_no_longer_sees_the_demo_or_the_note_is_no_event() -> None:
    before = answered(**COLD)

    assert lead_events(before, answered(**COLD, demo_datetime=None, smart_notification=None), DEFAULTS) == ()


def test_a_lead_that_stays_hot_is_announced_hot_once() -> None:
    before = answered(**HOT)

    assert LeadEvent.HOT_LEAD not in lead_events(before, answered(**HOT, engagement=1), DEFAULTS)


def test_a_lead_that_becomes_hot_later_is_announced_hot_then() -> None:
    before = answered(**COLD)

    assert lead_events(before, answered(**HOT), DEFAULTS) == (LeadEvent.HOT_LEAD,)


def test_hot_is_judged_by_the_businesss_own_thresholds() -> None:
    lenient = HotLeadThresholds.of({"fit": 1})

    assert lead_events(None, answered(**COLD, demo_datetime=None, smart_notification=None), lenient) == (
        LeadEvent.HOT_LEAD,
    )
