"""How OpenAIExtractor reads a Responses answer: a JSON object, or a failure that says why not."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from adapters.openai.extractor import answer_from
from application.ports.leads import ExtractionFailed


def response(*content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Responses API answer as OpenAI sends it (checked against the SDK's own model of one)."""
    data: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": "gpt-4.1-mini",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": content}],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 150,
        },
    }
    data.update(fields)
    Response.model_validate(data)
    return data


def text(value: str) -> dict[str, Any]:
    return {"type": "output_text", "text": value, "annotations": []}


def test_a_json_object_is_the_answer_with_its_id_and_usage() -> None:
    answer = answer_from(response(text('{"name": "Dana", "fit": 3}')))

    assert (answer.fields, answer.response_id, answer.input_tokens, answer.output_tokens) == (
        {"name": "Dana", "fit": 3},
        "resp_1",
        120,
        30,
    )


def test_a_refusal_is_not_retryable_and_says_what_the_model_said() -> None:
    with pytest.raises(ExtractionFailed) as failed:
        answer_from(response({"type": "refusal", "refusal": "I can't help with that."}))

    assert not failed.value.retryable
    assert failed.value.reason == "OpenAI refused the extraction: I can't help with that."


def test_an_answer_cut_short_is_retryable_and_names_the_reason() -> None:
    cut = response(text('{"name": "Da'), status="incomplete", incomplete_details={"reason": "max_output_tokens"})

    with pytest.raises(ExtractionFailed) as failed:
        answer_from(cut)

    assert failed.value.retryable
    assert failed.value.reason == "OpenAI extraction ended incomplete: max_output_tokens"


def test_an_answer_without_text_is_retryable() -> None:
    with pytest.raises(ExtractionFailed) as failed:
        answer_from(response())

    assert failed.value.retryable
    assert "not JSON" in failed.value.reason
