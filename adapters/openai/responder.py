"""AIResponder on the official `openai` SDK: one OpenAI conversation per customer conversation.

Retries are ours, not the SDK's. The SDK retries a timed-out `responses.create` on its own, and
because OpenAI takes no idempotency key for it, a retried call can append the same turn to the
conversation twice. We retry with tenacity instead, and before asking again after an ambiguous
failure (timeout, dropped connection, 5xx) we look in the conversation for the reply that may have
landed, so a turn never lands twice.

Every attempt goes through a circuit breaker (`adapters/circuit.py`): after repeated failures that
say OpenAI is down or throttling us, calls stop for a while and `respond` fails at once as
retryable, so the worker keeps the turn waiting instead of spending retries on an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai
import structlog
from openai.types.conversations import ConversationItem, Message
from openai.types.responses import EasyInputMessageParam, ResponseInputParam, ResponsePromptParam
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from adapters.circuit import Circuit, CircuitOpen
from adapters.openai.clients import OpenAIClients
from application.ports.services import AIRequest, AIRequestFailed
from domain.turns import AIReply

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: The code OpenAI gives (with HTTP 400, which nobody retries by default) when another call is still
#: operating on the conversation; it clears once that call finishes.
CONVERSATION_LOCKED = "conversation_locked"

#: Items per page when reading a conversation back; the API's maximum.
_PAGE_SIZE = 100


class OpenAIResponder:
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
    ) -> None:
        self._api_key = api_key
        self._clients = OpenAIClients(api_key=api_key, base_url=base_url, timeout_s=timeout_ms / 1000)
        self._max_retries = max_retries
        self._timeout_s = timeout_ms / 1000
        self._backoff_base_s = backoff_base_ms / 1000
        self._backoff_max_s = backoff_max_ms / 1000
        self._sleep = sleep
        self._circuit = circuit or Circuit("openai", failures=5, reset_after_s=30.0, is_outage=is_outage)
        # One for every call, whose own state (the operation, its budget) travels in the call's arguments: a
        # `Retrying` keeps its per-thread state in a reference cycle, and one made per call left a cycle per
        # AI turn for the garbage collector, whose passes pause every thread of the worker.
        self._retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    @property
    def available(self) -> bool:
        return self._circuit.available

    def start_conversation(self, *, metadata: dict[str, str]) -> str:
        # A retried create can at worst leave an empty conversation behind, which costs nothing.
        # Low-level `post` for the same reason as in `_Turn._ask`: this runs once per new customer.
        created = self._with_retries("start_conversation", lambda: self._create_conversation(metadata))
        return str(_as_dict(created)["id"])

    def respond(self, request: AIRequest) -> AIReply:
        turn = _Turn(self._clients, request)
        return self._with_retries("respond", turn.attempt)

    def _create_conversation(self, metadata: dict[str, str]) -> object:
        with self._clients.lent() as client:
            return client.post("/conversations", body={"metadata": metadata}, cast_to=object)

    def _with_retries(self, operation: str, call: Callable[[], T]) -> T:
        # Another call on the conversation lasts at most as long as ours may: every attempt, timed out.
        budget = _Budget(self._max_retries, lock_wait_s=self._timeout_s * (self._max_retries + 1))
        try:
            answer: T = self._retrying(self._attempt, operation, budget, call)
        except CircuitOpen as error:
            raise AIRequestFailed(f"OpenAI {operation} not tried: {error}", retryable=True) from None
        except openai.OpenAIError as error:
            # `from None`: the reason says all there is, and the SDK's exception text is not scrubbed.
            reason = self._scrub(describe(error))
            if is_retryable(error):
                raise AIRequestFailed(
                    f"OpenAI {operation} failed after {budget.attempts} attempts: {reason}", retryable=True
                ) from None
            raise AIRequestFailed(f"OpenAI {operation} failed: {reason}", retryable=False) from None
        return answer

    def _attempt(self, operation: str, budget: _Budget, call: Callable[[], T]) -> T:
        """One attempt; `operation` and `budget` are its call's, read back by the retry strategy below."""
        return self._circuit.call(call)

    def _stop(self, state: RetryCallState) -> bool:
        return _budget_of(state).spent(state)

    def _wait(self, state: RetryCallState) -> float:
        return wait_before_retry(state, base_s=self._backoff_base_s, max_s=self._backoff_max_s)

    def _before_sleep(self, state: RetryCallState) -> None:
        """Count the wait against the budget, and say why we wait."""
        _budget_of(state).sleeping(state)
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "openai_retry",
            operation=state.args[0],
            attempt=state.attempt_number,
            max_failures=self._max_retries + 1,
            reason=self._scrub(describe(error)) if error else None,
            wait_s=round(state.upcoming_sleep, 3),
        )

    def _scrub(self, text: str) -> str:
        return scrub_key(text, self._api_key)


class _Budget:
    """When to stop retrying one call: after `max_retries` failures — not counting the times OpenAI said
    another call is operating on the conversation (`conversation_locked`). Those mean our own earlier
    call, or a worker's that lost its lock, is still running; its reply is about to land, and giving up
    would fail a turn that is being answered. They are waited out for up to `lock_wait_s`, and the reply
    that landed meanwhile is then found in the conversation."""

    def __init__(self, max_retries: int, *, lock_wait_s: float) -> None:
        self._max_retries = max_retries
        self._lock_wait_s = lock_wait_s
        self._failures = 0
        self._waited_on_locks = 0.0
        self.attempts = 0

    def spent(self, state: RetryCallState) -> bool:
        self.attempts = state.attempt_number
        if is_conversation_locked(_error_of(state)):
            return self._waited_on_locks >= self._lock_wait_s
        self._failures += 1
        return self._failures > self._max_retries

    def sleeping(self, state: RetryCallState) -> None:
        if is_conversation_locked(_error_of(state)):
            self._waited_on_locks += state.upcoming_sleep


def _budget_of(state: RetryCallState) -> _Budget:
    budget = state.args[1]
    assert isinstance(budget, _Budget)
    return budget


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


class _Turn:
    """One AI turn across its attempts: remembers whether an earlier attempt may have landed."""

    def __init__(self, clients: OpenAIClients, request: AIRequest) -> None:
        self._clients = clients
        self._request = request
        self._may_have_landed = request.resumed

    def attempt(self) -> AIReply:
        with self._clients.lent() as client:
            if self._may_have_landed:
                landed = self._find_landed_reply(client)
                if landed is not None:
                    log.info("openai_reply_recovered", conversation=self._request.openai_conversation_id)
                    return landed
            try:
                return self._ask(client)
            except openai.OpenAIError as error:
                if is_ambiguous(error):
                    self._may_have_landed = True
                raise

    def _ask(self, client: openai.OpenAI) -> AIReply:
        request = self._request
        prompt: ResponsePromptParam = {"id": request.prompt_id}
        if request.prompt_version:
            prompt["version"] = request.prompt_version
        # What the AI is told first (a person's replies as `assistant`, which takes a plain string content,
        # not `input_text` parts), then the customer's new messages.
        told: list[EasyInputMessageParam] = [
            {"role": "assistant" if role == "assistant" else "user", "content": text} for role, text in request.context
        ]
        new: list[EasyInputMessageParam] = [{"role": "user", "content": text} for text in request.inputs]
        inputs: ResponseInputParam = [*told, *new]
        body = {"prompt": prompt, "conversation": request.openai_conversation_id, "input": inputs, "store": True}
        # The SDK's generic `post` sends exactly what `responses.create` would, with the same auth,
        # timeouts and error types, but skips walking the typed parameters and building the typed
        # Response, a good part of the call's CPU on the path every message takes
        # (reference-docs/architecture.md, "What moved the numbers").
        return reply_from(client.post("/responses", body=body, cast_to=object))

    def _find_landed_reply(self, client: openai.OpenAI) -> AIReply | None:
        request = self._request
        if request.after_item_id:
            page = client.conversations.items.list(
                request.openai_conversation_id, after=request.after_item_id, order="asc", limit=_PAGE_SIZE
            )
        else:
            page = client.conversations.items.list(request.openai_conversation_id, order="asc", limit=_PAGE_SIZE)
        # Iterating the page follows the cursor through every later page.
        return find_reply_to(request.inputs, list(page))


def reply_from(response: object) -> AIReply:
    """The reply in a Responses API `response` object (decoded JSON): the text of its output messages,
    as the SDK's `output_text` joins it, its id, token usage and the id of its last output item."""
    data = _as_dict(response)
    output = [item for item in data.get("output") or [] if isinstance(item, dict)]
    text = "".join(
        part.get("text", "")
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return AIReply(
        text=text,
        response_id=data.get("id"),
        input_tokens=usage.get("input_tokens") if usage else None,
        output_tokens=usage.get("output_tokens") if usage else None,
        last_item_id=output[-1].get("id") if output else None,
    )


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        # An OpenAIError, so it ends as an AIRequestFailed like any other answer we cannot use.
        raise openai.OpenAIError(f"OpenAI answered {type(value).__name__}, not a JSON object")
    return value


def find_reply_to(inputs: tuple[str, ...], items: list[ConversationItem]) -> AIReply | None:
    """The completed assistant reply that follows this turn's user inputs in `items`, if it is there.

    The last occurrence of the inputs counts: without an `after_item_id` the whole conversation is
    read, and a customer may well have written the same words in an earlier turn. The reply runs
    from the inputs to the next user message. An assistant message still in progress means the call
    is still running, so nothing is taken yet; an incomplete one (cut at the token limit) counts,
    as it would have in the call's own answer.
    """
    count = len(inputs)
    for start in range(len(items) - count, -1, -1):
        if [_user_text(item) for item in items[start : start + count]] != list(inputs):
            continue
        reply_items = []
        for item in items[start + count :]:
            if _user_text(item) is not None:
                break
            reply_items.append(item)
        answers = [item for item in reply_items if isinstance(item, Message) and item.role == "assistant"]
        if not answers or any(answer.status == "in_progress" for answer in answers):
            return None
        text = "".join(_output_text(answer) for answer in answers)
        return AIReply(
            text=text, response_id=None, input_tokens=None, output_tokens=None, last_item_id=reply_items[-1].id
        )
    return None


def _user_text(item: ConversationItem) -> str | None:
    if not isinstance(item, Message) or item.role != "user":
        return None
    return "".join(part.text for part in item.content if part.type == "input_text")


def _output_text(message: Message) -> str:
    return "".join(part.text for part in message.content if part.type == "output_text")


def is_conversation_locked(error: BaseException | None) -> bool:
    return isinstance(error, openai.BadRequestError) and error.code == CONVERSATION_LOCKED


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, openai.BadRequestError):
        return is_conversation_locked(error)
    if isinstance(error, openai.APIStatusError):
        # 408 and 409 are retried as the SDK itself would; 400/401/403/404/422 will not get better.
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)  # includes APITimeoutError


def is_outage(error: BaseException) -> bool:
    """A failure that says OpenAI is down or throttling us, whatever we ask: what opens the circuit."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)


def is_ambiguous(error: BaseException) -> bool:
    """True when the failed call may still have reached OpenAI and appended the turn."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)


def describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        message = body.get("message") or error.message
        code = f" {error.code}" if error.code else ""
        return f"HTTP {error.status_code}{code}: {message}"
    if isinstance(error, openai.APITimeoutError):
        return "timed out waiting for OpenAI"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        return f"could not connect to OpenAI ({cause or error.message})"
    return f"{type(error).__name__}: {error}"


def wait_before_retry(state: RetryCallState, *, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter, at least what a 429 says in retry-after, and at most `max_s`."""
    backoff = wait_exponential_jitter(multiplier=base_s, max=max_s, jitter=base_s)(state)
    # A 429 may say how long to wait; waiting less only earns another 429.
    return min(max(backoff, _retry_after_s(_error_of(state))), max_s)


def scrub_key(text: str, api_key: str) -> str:
    # OpenAI echoes part of a rejected key in its 401 message; never pass a key on to logs or the database.
    return text.replace(api_key, "***") if api_key else text


def _retry_after_s(error: BaseException | None) -> float:
    if not isinstance(error, openai.APIStatusError):
        return 0.0
    try:
        return max(float(error.response.headers.get("retry-after", 0)), 0.0)
    except ValueError:  # an HTTP date instead of seconds: fall back to our own backoff
        return 0.0
