"""LeadExtractor on the official `openai` SDK: one Responses call with a strict JSON schema of the lead fields.

An extraction is a single, stateless call (`store=False`, no conversation), so retrying it cannot land
anything twice: unlike the responder there is nothing to look for before asking again. Retries are
still ours (tenacity, exponential backoff with jitter, a 429's retry-after honoured) and every attempt
goes through a circuit breaker; the retry rules, the outage rule and the wording of errors are the
responder's own, imported from it.

The answer is only checked for shape here (a JSON object); each field is checked by the domain
(`LeadFields.from_answer`), so one bad value never costs the rest of the lead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import openai
import structlog
from openai.types.responses import EasyInputMessageParam, ResponsePromptParam, ResponseTextConfigParam
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from adapters.circuit import Circuit, CircuitOpen
from adapters.openai.clients import OpenAIClients
from adapters.openai.responder import describe, is_outage, is_retryable, reply_from, scrub_key, wait_before_retry
from application.ports.leads import ExtractionAnswer, ExtractionFailed, ExtractionRequest
from domain.extraction import DESCRIPTIONS, FIELDS, SCORE_FIELDS, SCORE_RANGE

log = structlog.get_logger(__name__)

#: The name of the structured-output format, as OpenAI's logs show it.
SCHEMA_NAME = "lead"


def _lead_schema() -> dict[str, object]:
    """The strict-mode schema of `domain.extraction.FIELDS`: every field required and nullable (null is
    how the AI says "not stated"), nothing else allowed."""
    lowest, highest = SCORE_RANGE[0], SCORE_RANGE[-1]
    properties: dict[str, object] = {}
    for name in FIELDS:
        if name in SCORE_FIELDS:
            description = f"{DESCRIPTIONS[name]} An integer from {lowest} to {highest}, or null."
            properties[name] = {"type": ["integer", "null"], "description": description}
        else:
            properties[name] = {"type": ["string", "null"], "description": DESCRIPTIONS[name]}
    return {"type": "object", "properties": properties, "required": list(FIELDS), "additionalProperties": False}


LEAD_SCHEMA = _lead_schema()


class OpenAIExtractor:
    label = "openai"

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        timeout_ms: int,
        max_retries: int,
        backoff_base_ms: int = 500,
        backoff_max_ms: int = 8000,
        sleep: Callable[[float], None] = time.sleep,
        circuit: Circuit | None = None,
        model: str = "gpt-4.1-mini",
    ) -> None:
        self._api_key = api_key
        self._clients = OpenAIClients(api_key=api_key, base_url=base_url, timeout_s=timeout_ms / 1000)
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_ms / 1000
        self._backoff_max_s = backoff_max_ms / 1000
        self._sleep = sleep
        self._circuit = circuit or Circuit("openai_extraction", failures=5, reset_after_s=30.0, is_outage=is_outage)
        self._model = model
        # One for every call (as the responder's): one made per call was a reference cycle per extraction.
        self._retrying = Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    @property
    def available(self) -> bool:
        return self._circuit.available

    def extract(self, request: ExtractionRequest) -> ExtractionAnswer:
        try:
            response = self._retrying(self._circuit.call, lambda: self._ask(request))
        except CircuitOpen as error:
            raise ExtractionFailed(f"OpenAI extraction not tried: {error}", retryable=True) from None
        except openai.OpenAIError as error:
            # `from None`: the reason says all there is, and the SDK's exception text is not scrubbed.
            reason = scrub_key(describe(error), self._api_key)
            if is_retryable(error):
                # A retryable error ends the tries only once all of them are spent.
                raise ExtractionFailed(
                    f"OpenAI extraction failed after {self._max_retries + 1} attempts: {reason}", retryable=True
                ) from None
            raise ExtractionFailed(f"OpenAI extraction failed: {reason}", retryable=False) from None
        return answer_from(response)

    def _wait(self, state: RetryCallState) -> float:
        return wait_before_retry(state, base_s=self._backoff_base_s, max_s=self._backoff_max_s)

    def _ask(self, request: ExtractionRequest) -> object:
        transcript: EasyInputMessageParam = {"role": "user", "content": request.transcript}
        text_format: ResponseTextConfigParam = {
            "format": {"type": "json_schema", "name": SCHEMA_NAME, "schema": LEAD_SCHEMA, "strict": True}
        }
        body: dict[str, object] = {
            "input": [transcript],
            "text": text_format,
            "store": False,
            "metadata": dict(request.metadata),
        }
        if request.prompt_id:
            # The dashboard prompt carries its own model and instructions.
            prompt: ResponsePromptParam = {"id": request.prompt_id}
            if request.prompt_version:
                prompt["version"] = request.prompt_version
            body["prompt"] = prompt
        else:
            body["model"] = self._model
            body["instructions"] = request.instructions
        # The generic `post`, as the responder does: `responses.create` walks the typed parameters (the
        # JSON schema's every node) and builds a typed Response, about a third of a reading's CPU
        # (bench/README.md, "Lead extraction"), for the same request, auth, timeouts and errors.
        with self._clients.lent() as client:
            return client.post("/responses", body=body, cast_to=object)

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "openai_retry",
            operation="extract",
            attempt=state.attempt_number,
            max_failures=self._max_retries + 1,
            reason=scrub_key(describe(error), self._api_key) if error else None,
            wait_s=round(state.upcoming_sleep, 3),
        )


def answer_from(response: object) -> ExtractionAnswer:
    """The lead fields in a completed Responses API answer (decoded JSON); ExtractionFailed when it holds no
    JSON object."""
    if not isinstance(response, dict):
        raise ExtractionFailed(f"OpenAI answered {type(response).__name__}, not a JSON object", retryable=True)
    messages = [
        item for item in response.get("output") or [] if isinstance(item, dict) and item.get("type") == "message"
    ]
    refusals = [
        str(part.get("refusal") or "")
        for item in messages
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "refusal"
    ]
    if refusals:
        # Asking again about the same conversation earns the same refusal; new messages may change it.
        raise ExtractionFailed(f"OpenAI refused the extraction: {' '.join(refusals)[:500]}", retryable=False)
    status = response.get("status")
    if status not in (None, "completed"):
        details = (response.get("incomplete_details") or {}).get("reason")
        error = (response.get("error") or {}).get("message")
        why = details or error or "no reason given"
        raise ExtractionFailed(f"OpenAI extraction ended {status}: {why}", retryable=True)
    reply = reply_from(response)
    try:
        fields = json.loads(reply.text)
    except ValueError:
        raise ExtractionFailed(f"OpenAI answered text that is not JSON: {reply.text[:200]!r}", retryable=True) from None
    if not isinstance(fields, dict):
        raise ExtractionFailed(f"OpenAI answered JSON {type(fields).__name__}, not an object", retryable=True)
    return ExtractionAnswer(
        fields=fields,
        response_id=reply.response_id,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
    )
