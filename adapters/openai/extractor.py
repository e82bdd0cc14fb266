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
from openai.types.responses import EasyInputMessageParam, Response, ResponsePromptParam, ResponseTextConfigParam
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from adapters.circuit import Circuit, CircuitOpen
from adapters.openai.responder import describe, is_outage, is_retryable, scrub_key, wait_before_retry
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
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_ms / 1000, max_retries=0)
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_ms / 1000
        self._backoff_max_s = backoff_max_ms / 1000
        self._sleep = sleep
        self._circuit = circuit or Circuit("openai_extraction", failures=5, reset_after_s=30.0, is_outage=is_outage)
        self._model = model

    @property
    def available(self) -> bool:
        return self._circuit.available

    def extract(self, request: ExtractionRequest) -> ExtractionAnswer:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=lambda state: wait_before_retry(state, base_s=self._backoff_base_s, max_s=self._backoff_max_s),
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            response = retrying(lambda: self._circuit.call(lambda: self._ask(request)))
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

    def _ask(self, request: ExtractionRequest) -> Response:
        transcript: EasyInputMessageParam = {"role": "user", "content": request.transcript}
        text_format: ResponseTextConfigParam = {
            "format": {"type": "json_schema", "name": SCHEMA_NAME, "schema": LEAD_SCHEMA, "strict": True}
        }
        if request.prompt_id:
            # The dashboard prompt carries its own model and instructions.
            prompt: ResponsePromptParam = {"id": request.prompt_id}
            if request.prompt_version:
                prompt["version"] = request.prompt_version
            return self._client.responses.create(
                prompt=prompt,
                input=[transcript],
                text=text_format,
                store=False,
                metadata=dict(request.metadata),
            )
        return self._client.responses.create(
            model=self._model,
            instructions=request.instructions,
            input=[transcript],
            text=text_format,
            store=False,
            metadata=dict(request.metadata),
        )

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


def answer_from(response: Response) -> ExtractionAnswer:
    """The lead fields in a completed response; ExtractionFailed when it holds no JSON object."""
    refusals = [
        part.refusal
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "refusal"
    ]
    if refusals:
        # Asking again about the same conversation earns the same refusal; new messages may change it.
        raise ExtractionFailed(f"OpenAI refused the extraction: {' '.join(refusals)[:500]}", retryable=False)
    if response.status not in (None, "completed"):
        details = response.incomplete_details.reason if response.incomplete_details else None
        error = response.error.message if response.error else None
        why = details or error or "no reason given"
        raise ExtractionFailed(f"OpenAI extraction ended {response.status}: {why}", retryable=True)
    text = response.output_text
    try:
        fields = json.loads(text)
    except ValueError:
        raise ExtractionFailed(f"OpenAI answered text that is not JSON: {text[:200]!r}", retryable=True) from None
    if not isinstance(fields, dict):
        raise ExtractionFailed(f"OpenAI answered JSON {type(fields).__name__}, not an object", retryable=True)
    usage = response.usage
    return ExtractionAnswer(
        fields=fields,
        response_id=response.id,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
    )
