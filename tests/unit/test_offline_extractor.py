"""The offline extractor used in dev mode without an OPENAI_API_KEY."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.openai.offline import OFFLINE_EXTRACTOR_LABEL, OfflineExtractor
from application.ports.leads import ExtractionRequest
from domain.extraction import BUILT_IN_INSTRUCTIONS, FIELDS, LeadFields, TranscriptLine, transcript_text

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def extract(*lines: tuple[str, str]) -> LeadFields:
    transcript = transcript_text([TranscriptLine(n, AT, sender, text) for n, (sender, text) in enumerate(lines, 1)])
    answer = OfflineExtractor().extract(ExtractionRequest(BUILT_IN_INSTRUCTIONS, transcript))
    assert set(answer.fields) == set(FIELDS)
    assert (answer.response_id, answer.input_tokens, answer.output_tokens) == (None, None, None)
    return LeadFields.from_answer(answer.fields, written_at=AT)


def test_it_reads_the_customers_name_and_email_and_scores_everything_in_the_middle() -> None:
    lead = extract(
        ("customer", "Hello, I'm Dana Reyes from Acme"),
        ("ai", "Hi Dana! I'm Ava. What's your e-mail? Or write to sales@shop.example"),
        ("customer", "dana@acme.example"),
    )

    assert (lead.name, lead.email) == ("Dana Reyes", "dana@acme.example")
    assert (lead.urgency, lead.budget, lead.fit, lead.engagement) == (2, 2, 2, 2)
    assert (lead.company, lead.intent, lead.demo_datetime) == (None, None, None)


def test_my_name_is_counts_whatever_its_case() -> None:
    assert extract(("customer", "hi, My name is Sam")).name == "Sam"


def test_what_it_does_not_find_is_left_missing_not_guessed() -> None:
    lead = extract(("customer", "I'm interested in your prices"), ("ai", "I'm Ava, write to sales@shop.example"))

    assert lead.name is None and lead.email is None
    assert {"name", "email", "company", "intent", "demo_datetime"} <= set(lead.missing)


def test_its_smart_notification_says_it_is_the_offline_extractor() -> None:
    lead = extract(("customer", "Can someone call me back?"), ("ai", "Sure."))

    assert lead.smart_notification == f"{OFFLINE_EXTRACTOR_LABEL} Last customer message: Can someone call me back?"
