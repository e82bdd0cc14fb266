"""Ports of lead extraction and notifications, other than storage: the AI that reads a conversation for
its lead data, the background job queue, and the sender of outgoing webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from attrs import frozen


@frozen
class ExtractionRequest:
    """Ask the AI for the lead fields of one conversation.

    With `prompt_id` the agent's own extraction prompt (an OpenAI dashboard prompt) is used; otherwise
    `instructions` (the built-in ones). `transcript` is the conversation as the domain wrote it
    (`domain.extraction.transcript_text`).
    """

    instructions: str
    transcript: str
    prompt_id: str | None = None
    prompt_version: str | None = None
    #: Labels for OpenAI's logs (user, conversation); never customer data.
    metadata: Mapping[str, str] = {}


@frozen
class ExtractionAnswer:
    """What the AI answered: the JSON object as it came (validated by the domain, field by field)."""

    fields: Mapping[str, object]
    response_id: str | None
    input_tokens: int | None
    output_tokens: int | None


class ExtractionFailed(Exception):
    """The AI gave no usable answer. `retryable`: ask again later (an outage, a timeout, a rate limit);
    otherwise the request itself was refused (a prompt that does not exist, a key without access)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class LeadExtractor(Protocol):
    def extract(self, request: ExtractionRequest) -> ExtractionAnswer:
        """One structured-output call (strict JSON schema of `domain.extraction.FIELDS`), retried where
        worth it. Raises ExtractionFailed. An answer that is not a JSON object is a retryable failure."""


class BackgroundJobs(Protocol):
    """The queue of work that must never delay a reply: extractions and webhook deliveries. Raises
    QueueUnavailable; what was not queued is found again by the next sweep (its claim runs out)."""

    def enqueue_extraction(self, conversation_id: int) -> None: ...

    def enqueue_webhook(self, delivery_id: int) -> None: ...


@frozen
class WebhookResponse:
    """How a receiver answered one POST: `status` None when no HTTP answer came (`error` says why)."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """POST `body` as it is (the signature covers these bytes). Never raises for the receiver's
        failures (refused, timed out, 5xx, a URL the service may not call): they are the answer."""
