"""OpenAIExtractor driving the real `openai` SDK against the stand-in OpenAI server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from structlog.testing import capture_logs

from adapters.circuit import Circuit
from adapters.openai.extractor import LEAD_SCHEMA, OpenAIExtractor
from adapters.openai.responder import is_outage
from application.ports.leads import ExtractionFailed, ExtractionRequest
from domain.extraction import BUILT_IN_INSTRUCTIONS, FIELDS, SCORE_FIELDS, LeadFields, TranscriptLine, transcript_text
from tests.support.garbage import left_in_cycles
from tests.support.standin_openai import Failure, StandInOpenAI, usage_for

API_KEY = "sk-test-0123456789abcdef"

MakeExtractor = Callable[..., OpenAIExtractor]

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TRANSCRIPT = transcript_text(
    [
        TranscriptLine(1, AT, "customer", "Hi, my name is Dana Reyes, I'd like a demo for my team."),
        TranscriptLine(2, AT, "ai", "Happy to help! What is your e-mail? Or write to sales@shop.example."),
        TranscriptLine(3, AT, "customer", "dana@acme.example — and we need it before the end of the month."),
    ]
)
METADATA = {"user_id": "usr_1", "conversation_id": "42"}
SCRIPTED = {
    "name": "Dana Reyes",
    "email": "dana@acme.example",
    "company": "Acme",
    "intent": "book a demo",
    "urgency": 3,
    "budget": 2,
    "fit": 3,
    "engagement": 3,
    "demo_datetime": "2026-03-04T15:00:00+01:00",
    "smart_notification": "Dana wants a demo before the end of the month.",
}


@pytest.fixture
def standin() -> Iterator[StandInOpenAI]:
    with StandInOpenAI() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_extractor(standin: StandInOpenAI, sleeps: list[float]) -> MakeExtractor:
    def make(**overrides: object) -> OpenAIExtractor:
        options: dict[str, object] = {
            "api_key": API_KEY,
            "base_url": standin.base_url,
            "timeout_ms": 2000,
            "max_retries": 3,
            "sleep": sleeps.append,  # the backoff is recorded, not waited for
        }
        options.update(overrides)
        return OpenAIExtractor(**options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def extractor(make_extractor: MakeExtractor) -> OpenAIExtractor:
    return make_extractor()


def built_in(**fields: Any) -> ExtractionRequest:
    return ExtractionRequest(instructions=BUILT_IN_INSTRUCTIONS, transcript=TRANSCRIPT, metadata=METADATA, **fields)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- what is asked ---------------------------------------------------------------------------------


def test_request_carries_the_strict_lead_schema_the_transcript_and_is_not_stored(
    extractor: OpenAIExtractor, standin: StandInOpenAI
) -> None:
    extractor.extract(built_in())

    [body] = standin.calls("extractions")
    text_format = body["text"]["format"]
    assert (text_format["type"], text_format["name"], text_format["strict"]) == ("json_schema", "lead", True)
    schema = text_format["schema"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(FIELDS)
    assert list(schema["properties"]) == list(FIELDS)
    for name in FIELDS:
        expected = ["integer", "null"] if name in SCORE_FIELDS else ["string", "null"]
        assert schema["properties"][name]["type"] == expected, name
        assert schema["properties"][name]["description"]
    assert "1 to 3" in schema["properties"]["urgency"]["description"]
    assert body["input"] == [{"role": "user", "content": TRANSCRIPT}]
    assert body["store"] is False
    assert body["metadata"] == METADATA
    assert "conversation" not in body
    assert standin.calls("responses") == []  # an extraction is not a conversation turn


def test_without_a_prompt_the_built_in_instructions_and_model_are_sent(
    make_extractor: MakeExtractor, standin: StandInOpenAI
) -> None:
    make_extractor(model="gpt-4.1-nano").extract(built_in())

    [body] = standin.calls("extractions")
    assert (body["model"], body["instructions"]) == ("gpt-4.1-nano", BUILT_IN_INSTRUCTIONS)
    assert "prompt" not in body


def test_the_agents_own_prompt_is_sent_with_its_version_and_without_instructions_or_model(
    extractor: OpenAIExtractor, standin: StandInOpenAI
) -> None:
    extractor.extract(built_in(prompt_id="pmpt_leads", prompt_version="4"))
    extractor.extract(built_in(prompt_id="pmpt_leads"))

    with_version, without_version = standin.calls("extractions")
    assert with_version["prompt"] == {"id": "pmpt_leads", "version": "4"}
    assert without_version["prompt"] == {"id": "pmpt_leads"}
    assert all("instructions" not in body and "model" not in body for body in (with_version, without_version))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"required": ["name"]}, "Missing 'email'"),
        ({"additionalProperties": True}, "'additionalProperties' is required to be supplied and to be false"),
    ],
    ids=["optional_property", "extra_properties_allowed"],
)
def test_the_stand_in_refuses_a_schema_strict_mode_would_refuse(
    standin: StandInOpenAI, change: dict[str, object], expected: str
) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=standin.base_url, max_retries=0)
    schema = {**LEAD_SCHEMA, **change}

    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="gpt-4.1-mini",
            input="[2026-03-02T09:30+00:00] Customer: hi",
            text={"format": {"type": "json_schema", "name": "lead", "schema": schema, "strict": True}},
        )

    assert refused.value.code == "invalid_json_schema"
    assert expected in refused.value.message


# --- what comes back -------------------------------------------------------------------------------


def test_a_scripted_answer_comes_back_as_the_fields_with_id_and_usage(
    extractor: OpenAIExtractor, standin: StandInOpenAI
) -> None:
    standin.answer_extractions_with(SCRIPTED)

    answer = extractor.extract(built_in())

    assert answer.fields == SCRIPTED
    assert answer.response_id is not None and answer.response_id.startswith("resp_")
    assert (answer.input_tokens, answer.output_tokens) == usage_for([TRANSCRIPT], json.dumps(SCRIPTED))


def test_the_default_answer_reads_the_customer_and_is_valid_for_the_domain(
    extractor: OpenAIExtractor, standin: StandInOpenAI
) -> None:
    answer = extractor.extract(built_in())

    assert set(answer.fields) == set(FIELDS)
    lead = LeadFields.from_answer(answer.fields, written_at=AT)
    assert (lead.name, lead.email) == ("Dana Reyes", "dana@acme.example")
    assert [lead.score(name) for name in SCORE_FIELDS] == [2, 2, 2, 2]
    assert lead.demo_datetime is None
    # The stand-in quotes the first 60 characters of the last customer line.
    assert lead.smart_notification == "Lead: dana@acme.example — and we need it before the end of the mon"


def test_invalid_fields_come_back_as_they_were_answered_for_the_domain_to_judge(
    extractor: OpenAIExtractor, standin: StandInOpenAI
) -> None:
    standin.answer_extractions_with({**dict.fromkeys(FIELDS), "fit": 7})

    answer = extractor.extract(built_in())

    assert answer.fields["fit"] == 7
    assert LeadFields.from_answer(answer.fields, written_at=AT).missing["fit"] == "7 is not a score from 1 to 3"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Sorry, I can't help with that.", "not JSON"), ('["dana@acme.example"]', "JSON list, not an object")],
    ids=["not_json", "not_an_object"],
)
def test_an_answer_that_is_not_a_json_object_is_a_retryable_failure_asked_once(
    extractor: OpenAIExtractor, standin: StandInOpenAI, sleeps: list[float], raw: str, expected: str
) -> None:
    standin.answer_extractions_with(lambda body: raw)

    with pytest.raises(ExtractionFailed) as failed:
        extractor.extract(built_in())

    assert failed.value.retryable
    assert expected in failed.value.reason
    assert len(standin.calls("extractions")) == 1  # asking again at once would most likely earn the same
    assert sleeps == []


# --- retries, refusals and the circuit -------------------------------------------------------------


@pytest.mark.parametrize(
    "failure", [Failure.server_error(), Failure(503), Failure.dropped()], ids=["500", "503", "dropped_connection"]
)
def test_a_transient_failure_is_retried_and_then_answered(
    extractor: OpenAIExtractor, standin: StandInOpenAI, sleeps: list[float], failure: Failure
) -> None:
    standin.answer_extractions_with(SCRIPTED)
    standin.fail_next(failure, endpoint="extractions")

    answer = extractor.extract(built_in())

    assert answer.fields == SCRIPTED
    assert len(standin.calls("extractions")) == 2
    assert len(sleeps) == 1


def test_a_timeout_is_retried(make_extractor: MakeExtractor, standin: StandInOpenAI) -> None:
    standin.fail_next(Failure.no_answer(delay_s=2.0), endpoint="extractions")

    answer = make_extractor(timeout_ms=400).extract(built_in())

    assert set(answer.fields) == set(FIELDS)
    assert len(standin.calls("extractions")) == 2


def test_a_failure_scripted_for_conversation_turns_is_not_spent_on_an_extraction(
    extractor: OpenAIExtractor, standin: StandInOpenAI, sleeps: list[float]
) -> None:
    standin.fail_next(Failure.bad_request(), endpoint="responses")

    extractor.extract(built_in())

    assert sleeps == []
    assert len(standin.calls("extractions")) == 1


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure.bad_request("Invalid value for 'text'."), "HTTP 400 invalid_value: Invalid value for 'text'."),
        (Failure.unauthorized(), "HTTP 401 invalid_api_key: Incorrect API key provided."),
        (Failure(403, None, "Project does not have access to model", "invalid_request_error"), "HTTP 403: Project"),
        (Failure.not_found(), "HTTP 404: Prompt with id 'pmpt_x' not found."),
    ],
    ids=["400", "401", "403", "404"],
)
def test_a_refused_request_is_not_retried_and_says_what_openai_said(
    extractor: OpenAIExtractor, standin: StandInOpenAI, sleeps: list[float], failure: Failure, expected: str
) -> None:
    standin.fail_next(failure, endpoint="extractions")

    with pytest.raises(ExtractionFailed) as failed:
        extractor.extract(built_in())

    assert not failed.value.retryable
    assert expected in failed.value.reason
    assert len(standin.calls("extractions")) == 1
    assert sleeps == []


def test_a_429_waits_as_long_as_retry_after_says_up_to_the_cap(
    make_extractor: MakeExtractor, standin: StandInOpenAI, sleeps: list[float]
) -> None:
    standin.fail_next(
        Failure.rate_limited(retry_after_s=3), Failure.rate_limited(retry_after_s=60), endpoint="extractions"
    )

    make_extractor(backoff_max_ms=8000).extract(built_in())

    assert 3 <= sleeps[0] < 4
    assert sleeps[1] == 8
    assert len(standin.calls("extractions")) == 3


def test_gives_up_after_max_retries_as_retryable_with_the_last_reason(
    make_extractor: MakeExtractor, standin: StandInOpenAI, sleeps: list[float]
) -> None:
    standin.fail_next(*[Failure.rate_limited()] * 3, endpoint="extractions")

    with pytest.raises(ExtractionFailed) as failed:
        make_extractor(max_retries=2).extract(built_in())

    assert failed.value.retryable
    assert failed.value.reason == (
        "OpenAI extraction failed after 3 attempts: "
        "HTTP 429 rate_limit_exceeded: Rate limit reached. Please try again later."
    )
    assert len(sleeps) == 2


def test_connection_refused_is_retried_then_fails_as_retryable(
    make_extractor: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make_extractor(base_url=f"http://127.0.0.1:{closed_port()}/v1", max_retries=1)

    with pytest.raises(ExtractionFailed) as failed:
        extractor.extract(built_in())

    assert failed.value.retryable
    assert "could not connect to OpenAI" in failed.value.reason
    assert len(sleeps) == 1


def test_the_key_never_reaches_a_reason_or_a_log(extractor: OpenAIExtractor, standin: StandInOpenAI) -> None:
    rejected = Failure(401, "invalid_api_key", f"Incorrect API key provided: {API_KEY}")
    standin.fail_next(Failure.server_error(), rejected, endpoint="extractions")

    with capture_logs() as logs, pytest.raises(ExtractionFailed) as failed:
        extractor.extract(built_in())

    assert "Incorrect API key provided: ***" in failed.value.reason
    assert [(entry["operation"], entry["attempt"]) for entry in logs if entry["event"] == "openai_retry"] == [
        ("extract", 1)
    ]
    assert all(API_KEY not in repr(entry) for entry in logs)


def test_after_repeated_outages_the_circuit_opens_and_extract_fails_at_once_as_retryable(
    make_extractor: MakeExtractor, standin: StandInOpenAI
) -> None:
    circuit = Circuit("openai_extraction", failures=4, reset_after_s=60.0, is_outage=is_outage)
    extractor = make_extractor(max_retries=3, circuit=circuit)
    standin.fail_next(*[Failure.server_error()] * 4, endpoint="extractions")
    with pytest.raises(ExtractionFailed) as first:
        extractor.extract(built_in())

    with pytest.raises(ExtractionFailed) as second:
        extractor.extract(built_in())

    assert first.value.retryable and second.value.retryable
    assert "circuit is open" in second.value.reason
    assert not extractor.available
    assert len(standin.calls("extractions")) == 4


def test_an_answer_that_is_not_json_does_not_count_toward_the_circuit(
    make_extractor: MakeExtractor, standin: StandInOpenAI
) -> None:
    extractor = make_extractor(
        circuit=Circuit("openai_extraction", failures=1, reset_after_s=60.0, is_outage=is_outage)
    )
    standin.answer_extractions_with(lambda body: "not json")

    for _ in range(2):
        with pytest.raises(ExtractionFailed):
            extractor.extract(built_in())

    assert extractor.available
    assert len(standin.calls("extractions")) == 2


# --- the stand-in as the benchmark runs it ---------------------------------------------------------


def test_the_stand_in_run_as_a_module_answers_an_extraction_by_default(make_extractor: MakeExtractor) -> None:
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standin_openai", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        answer = make_extractor(base_url=f"http://127.0.0.1:{port}/v1").extract(built_in())
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert set(answer.fields) == set(FIELDS)
    assert answer.fields["email"] == "dana@acme.example"


# --- memory ----------------------------------------------------------------------------------------


def test_an_extraction_leaves_nothing_for_the_garbage_collector(extractor: OpenAIExtractor) -> None:
    extractor.extract(built_in())  # the SDK's first use builds what it keeps

    assert left_in_cycles(lambda: extractor.extract(built_in())) == []
