"""A stand-in for OpenAI's Conversations and Responses APIs, enough for the real `openai` SDK.

It keeps every conversation's items like OpenAI does (the user inputs, then the assistant reply),
answers deterministically (`echo_reply`), refuses concurrent calls on one conversation with the
`conversation_locked` 400 OpenAI gives, and lets a test script failures, add latency or hold calls.

A Responses call without a conversation that asks for a JSON schema (`text.format.type == "json_schema"`)
is a lead *extraction*: its schema is checked against OpenAI's strict-mode rules, and it is answered
with a JSON object (`default_extraction`, or what a test scripts with `answer_extractions_with`).
Extractions are their own endpoint for `fail_next`, `calls` and `wait_for_calls` ("extractions"), so
the counts of conversation turns ("responses") stay what they were; `hold` holds only turns.

    python -m tests.support.standin_openai --port 8101 --latency-ms 800
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.standin_server import Exchange, RecordedRequest, StandInServer, serve_from_command_line

Endpoint = Literal["responses", "conversations", "items", "extractions"]
#: What an extraction is answered with: a JSON object, or a function of the request body giving one, or
#: giving raw text (so a test can answer something that is not JSON at all).
ExtractionScript = dict[str, Any] | Callable[[dict[str, Any]], "dict[str, Any] | str"]


def echo_reply(inputs: list[str]) -> str:
    """The stand-in's answer to a turn: tests assert on it."""
    return "echo: " + " | ".join(inputs)


def _prompt_id(body: dict[str, Any]) -> str | None:
    prompt = body.get("prompt")
    return str(prompt.get("id")) if isinstance(prompt, dict) else None


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NAME = re.compile(r"\bmy name is ([A-Z][\w'-]*(?: [A-Z][\w'-]*)?)", re.IGNORECASE)
_CUSTOMER_LINE = re.compile(r"^\[[^\]]*\] Customer: (.*)$", re.MULTILINE)


def default_extraction(body: dict[str, Any]) -> dict[str, Any]:
    """The stand-in's lead for an extraction call: read from the customer's lines with plain rules (the
    first e-mail address, the name after "my name is", every integer field 2, a smart notification
    quoting the last customer line), with every key the sent schema requires and no other."""
    transcript = "\n".join(_input_texts(body.get("input")))
    customer_lines = _CUSTOMER_LINE.findall(transcript)
    # The customer's own lines, when the transcript is in the domain's format: not the agent's "write to sales@…".
    said = "\n".join(customer_lines) if customer_lines else transcript
    schema = _schema_of(body)
    properties = schema.get("properties") or {}
    email = _EMAIL.search(said)
    name = _NAME.search(said)
    known: dict[str, Any] = {
        "email": email.group(0) if email else None,
        "name": name.group(1) if name else None,
        "smart_notification": f"Lead: {customer_lines[-1][:60]}" if customer_lines else None,
    }
    answer: dict[str, Any] = {}
    for key in schema.get("required") or []:
        kinds = (properties.get(key) or {}).get("type")
        is_integer = kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds)
        answer[key] = 2 if is_integer else known.get(key)
    return answer


def strict_schema_problem(schema: dict[str, Any]) -> str | None:
    """What OpenAI's strict mode refuses in a top-level object schema, or None when it takes it."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return "the schema must be an object with 'properties'"
    if schema.get("additionalProperties") is not False:
        return "'additionalProperties' is required to be supplied and to be false"
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    missing = [key for key in properties if key not in required]
    if missing:
        return (
            "'required' is required to be supplied and to be an array including every key in properties. "
            f"Missing '{missing[0]}'"
        )
    return None


def usage_for(inputs: list[str], reply: str) -> tuple[int, int]:
    """(input_tokens, output_tokens) the stand-in reports: one token per character, so tests can predict it."""
    return sum(len(text) for text in inputs), len(reply)


@dataclass(frozen=True)
class Failure:
    """What the stand-in does instead of answering one call normally.

    In order: append the turn to the conversation if `land` (as OpenAI does when it got the call but the
    answer never reached the client), wait `delay_s`, then answer `status` with an OpenAI error body, or
    close the connection if `drop`, or, when `status` is None, carry on and answer normally (late).
    """

    status: int | None = 500
    code: str | None = None
    message: str = "The server had an error while processing your request. Sorry about that!"
    error_type: str = "server_error"
    land: bool = False
    delay_s: float = 0.0
    drop: bool = False
    retry_after_s: float | None = None

    @classmethod
    def rate_limited(cls, retry_after_s: float | None = None) -> Failure:
        return cls(
            429,
            "rate_limit_exceeded",
            "Rate limit reached. Please try again later.",
            "requests",
            retry_after_s=retry_after_s,
        )

    @classmethod
    def server_error(cls) -> Failure:
        return cls(500)

    @classmethod
    def conversation_locked(cls) -> Failure:
        return cls(400, "conversation_locked", _LOCKED_MESSAGE, "invalid_request_error")

    @classmethod
    def bad_request(cls, message: str = "Invalid value for 'input'.") -> Failure:
        return cls(400, "invalid_value", message, "invalid_request_error")

    @classmethod
    def unauthorized(cls) -> Failure:
        return cls(401, "invalid_api_key", "Incorrect API key provided.", "invalid_request_error")

    @classmethod
    def not_found(cls) -> Failure:
        return cls(404, None, "Prompt with id 'pmpt_x' not found.", "invalid_request_error")

    @classmethod
    def slow(cls, delay_s: float) -> Failure:
        """Answer normally, but only after `delay_s`: longer than the client's timeout, it lands unseen."""
        return cls(None, delay_s=delay_s)

    @classmethod
    def no_answer(cls, delay_s: float) -> Failure:
        """Nothing lands; after `delay_s` a 500 (which a client with a shorter timeout never sees)."""
        return cls(500, delay_s=delay_s)

    @classmethod
    def land_then_fail(cls, status: int = 500) -> Failure:
        return cls(status, land=True)

    @classmethod
    def land_then_hang(cls, delay_s: float) -> Failure:
        return cls(500, land=True, delay_s=delay_s)

    @classmethod
    def dropped(cls, *, land: bool = False) -> Failure:
        return cls(None, land=land, drop=True)


_LOCKED_MESSAGE = "Another process is currently operating on this conversation. Please retry in a few seconds."


class Hold:
    """Blocks `/v1/responses` calls until released: lets a test act while a call is under way."""

    def __init__(self) -> None:
        self._released = threading.Event()
        self._arrived = threading.Condition()
        self._count = 0

    def wait_arrived(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` calls are being held; TimeoutError otherwise."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._count >= count, timeout=timeout):
                raise TimeoutError(f"only {self._count} of {count} held calls arrived within {timeout} s")

    def release(self) -> None:
        self._released.set()

    def block(self, stopping: threading.Event) -> None:
        with self._arrived:
            self._count += 1
            self._arrived.notify_all()
        while not self._released.wait(0.05) and not stopping.is_set():
            pass


@dataclass
class _Conversation:
    metadata: dict[str, str]
    created_at: int
    items: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class StandInOpenAI(StandInServer):
    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0, lock_conversations: bool = True
    ) -> None:
        super().__init__(host=host, port=port, latency_ms=latency_ms)
        self.lock_conversations = lock_conversations
        self._conversations: dict[str, _Conversation] = {}
        self._failures: dict[str, deque[Failure]] = {
            "responses": deque(),
            "conversations": deque(),
            "items": deque(),
            "extractions": deque(),
        }
        self._extraction_script: ExtractionScript | None = None
        self._hold: Hold | None = None
        self._ids = itertools.count(1)
        self._prompt_in_flight: dict[str, int] = {}
        self._prompt_max_in_flight: dict[str, int] = {}
        #: While set, every call is answered with it: OpenAI is down.
        self.outage: Failure | None = None
        #: When set, a reply starts with the prompt id it was made with ("[pmpt_x] echo: …"): tests can tell
        #: which agent answered. Off by default, so that `echo_reply` stays the whole answer.
        self.sign_with_prompt = False

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # --- control -------------------------------------------------------------------------------

    def fail_next(self, *failures: Failure, endpoint: Endpoint = "responses") -> None:
        """Answer the next calls to `endpoint` with these failures, one each, in order."""
        with self._state:
            self._failures[endpoint].extend(failures)

    def answer_extractions_with(self, script: ExtractionScript | None) -> None:
        """Answer every extraction from now on with `script` (a JSON object, or a function of the request
        body returning one or raw text); None goes back to `default_extraction`."""
        with self._state:
            self._extraction_script = script

    def hold(self) -> Hold:
        """Hold every `/v1/responses` call from now on until the returned Hold is released."""
        hold = Hold()
        with self._state:
            self._hold = hold
        return hold

    def create_conversation(self, metadata: dict[str, str] | None = None) -> str:
        """A conversation made directly, for tests that do not go through the SDK to set one up."""
        with self._state:
            return self._new_conversation(metadata or {})

    def append_turn(self, conversation_id: str, inputs: list[str]) -> str:
        """Land a turn as if an earlier, unseen call had made it; returns the assistant item's id."""
        with self._state:
            return str(self._land(self._conversations[conversation_id], inputs)["id"])

    # --- inspection ----------------------------------------------------------------------------

    def calls(self, endpoint: Endpoint) -> list[Any]:
        """JSON bodies (query strings for `items`) of the calls made to `endpoint`, in order."""
        return [
            request.query if endpoint == "items" else request.body
            for request in self.requests
            if _endpoint(request) == endpoint
        ]

    def inputs(self) -> list[list[tuple[str, str]]]:
        """(role, text) of each input message of each Responses call, in order: what the AI was told."""
        told: list[list[tuple[str, str]]] = []
        for body in self.calls("responses"):
            items = body.get("input") if isinstance(body, dict) else None
            told.append(
                [
                    (str(item.get("role")), text)
                    for item in (items if isinstance(items, list) else [])
                    if isinstance(item, dict)
                    for text in _input_texts([item])
                ]
            )
        return told

    def items(self, conversation_id: str) -> list[dict[str, Any]]:
        with self._state:
            return [dict(item) for item in self._conversations[conversation_id].items]

    def transcript(self, conversation_id: str) -> list[tuple[str, str]]:
        """(role, text) for each message of the conversation."""
        return [
            (item["role"], "".join(part["text"] for part in item["content"])) for item in self.items(conversation_id)
        ]

    def metadata(self, conversation_id: str) -> dict[str, str]:
        with self._state:
            return dict(self._conversations[conversation_id].metadata)

    def max_in_flight(self, conversation_id: str | None = None) -> int:
        """Most `/v1/responses` calls seen at once on one conversation (or on any, without an id)."""
        with self._state:
            if conversation_id is not None:
                return self._conversations[conversation_id].max_in_flight
            return max((conversation.max_in_flight for conversation in self._conversations.values()), default=0)

    def max_in_flight_per_prompt(self) -> dict[str, int]:
        """Most `/v1/responses` calls seen at once for each prompt id (one agent, so one number in the e2e tests)."""
        with self._state:
            return dict(self._prompt_max_in_flight)

    def wait_for_calls(self, endpoint: Endpoint, count: int, timeout: float = 10.0) -> None:
        self.wait_until(
            lambda: len(self._calls_locked(endpoint)) >= count, timeout=timeout, what=f"{count} {endpoint} calls"
        )

    # --- serving -------------------------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        endpoint = _endpoint(request)
        outage = self.outage
        if outage is not None and endpoint is not None:
            self._fail(exchange, outage)
        elif endpoint == "conversations":
            self._create_conversation(exchange)
        elif endpoint == "items":
            self._list_items(exchange)
        elif endpoint == "responses":
            self._create_response(exchange)
        elif endpoint == "extractions":
            self._create_extraction(exchange)
        else:
            exchange.reply(404, _error(f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None))

    def _create_conversation(self, exchange: Exchange) -> None:
        failure = self._next_failure("conversations")
        if failure is not None:
            self._fail(exchange, failure)
            return
        body = exchange.request.body or {}
        with self._state:
            conversation_id = self._new_conversation(dict(body.get("metadata") or {}))
            conversation = self._conversations[conversation_id]
        exchange.reply(
            200,
            {
                "id": conversation_id,
                "object": "conversation",
                "created_at": conversation.created_at,
                "metadata": conversation.metadata,
            },
        )

    def _list_items(self, exchange: Exchange) -> None:
        failure = self._next_failure("items")
        if failure is not None:
            self._fail(exchange, failure)
            return
        request = exchange.request
        conversation_id = request.path.split("/")[3]
        query = request.query
        with self._state:
            conversation = self._conversations.get(conversation_id)
            items = [dict(item) for item in conversation.items] if conversation else None
        if items is None:
            exchange.reply(
                404, _error(f"Conversation with id '{conversation_id}' not found.", "invalid_request_error", None)
            )
            return
        if query.get("order", "desc") == "desc":
            items.reverse()
        if "after" in query:
            ids = [item["id"] for item in items]
            if query["after"] not in ids:
                exchange.reply(
                    404, _error(f"Item with id '{query['after']}' not found.", "invalid_request_error", None)
                )
                return
            items = items[ids.index(query["after"]) + 1 :]
        limit = int(query.get("limit", 20))
        page = items[:limit]
        exchange.reply(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            },
        )

    def _create_response(self, exchange: Exchange) -> None:
        body = exchange.request.body or {}
        reference = body.get("conversation")
        conversation_id = reference.get("id") if isinstance(reference, dict) else reference
        with self._state:
            conversation = self._conversations.get(conversation_id) if conversation_id else None
        if conversation is None:
            exchange.reply(
                404, _error(f"Conversation with id '{conversation_id}' not found.", "invalid_request_error", None)
            )
            return
        prompt = body.get("prompt")
        prompt_id = str(prompt.get("id")) if isinstance(prompt, dict) else None
        with self._state:
            conversation.in_flight += 1
            conversation.max_in_flight = max(conversation.max_in_flight, conversation.in_flight)
            if prompt_id is not None:
                under_way = self._prompt_in_flight.get(prompt_id, 0) + 1
                self._prompt_in_flight[prompt_id] = under_way
                self._prompt_max_in_flight[prompt_id] = max(self._prompt_max_in_flight.get(prompt_id, 0), under_way)
            locked = self.lock_conversations and conversation.in_flight > 1
            hold = self._hold
        ended = threading.Event()

        def end() -> None:
            # Before the answer goes out (or at the latest when the handler gives up): the client may
            # start its next call the moment it reads the answer, and that call must not look concurrent.
            with self._state:
                if ended.is_set():
                    return
                ended.set()
                conversation.in_flight -= 1
                if prompt_id is not None:
                    self._prompt_in_flight[prompt_id] -= 1

        exchange.before_answer(end)
        try:
            if locked:
                self._fail(exchange, Failure.conversation_locked())
            else:
                self._answer(exchange, conversation, body, hold)
        finally:
            end()

    def _answer(self, exchange: Exchange, conversation: _Conversation, body: dict[str, Any], hold: Hold | None) -> None:
        inputs = _input_texts(body.get("input"))
        if hold is not None:
            hold.block(self._stopping)
        failure = self._next_failure("responses")
        landed: dict[str, Any] | None = None
        if failure is not None:
            if failure.land:
                with self._state:
                    landed = self._land(conversation, inputs)
            self._fail(exchange, failure)
            if failure.status is not None or failure.drop:
                return
        self.pause(self.latency_ms / 1000)
        if landed is None:
            with self._state:
                landed = self._land(conversation, inputs, _prompt_id(body))
        exchange.reply(200, self._response_body(body, inputs, landed))

    def _create_extraction(self, exchange: Exchange) -> None:
        body = exchange.request.body
        text_format = body["text"]["format"]
        problem = strict_schema_problem(_schema_of(body)) if text_format.get("strict") else None
        if problem is not None:
            name = text_format.get("name")
            message = f"Invalid schema for response_format '{name}': In context=(), {problem}."
            exchange.reply(400, _error(message, "invalid_request_error", "invalid_json_schema"))
            return
        failure = self._next_failure("extractions")
        if failure is not None:
            self._fail(exchange, failure)
            if failure.status is not None or failure.drop:
                return
        self.pause(self.latency_ms / 1000)
        with self._state:
            script = self._extraction_script
        answer = (script(body) if callable(script) else script) if script is not None else default_extraction(body)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        inputs = _input_texts(body.get("input"))
        message = self._message("assistant", "output_text", text)
        exchange.reply(200, self._extraction_body(body, inputs, message))

    def _extraction_body(self, body: dict[str, Any], inputs: list[str], message: dict[str, Any]) -> dict[str, Any]:
        answer = self._response_body(body, inputs, message)
        answer.update(
            conversation=None,
            store=False,
            instructions=body.get("instructions"),
            metadata=body.get("metadata") or {},
            text=body["text"],
        )
        return answer

    def _fail(self, exchange: Exchange, failure: Failure) -> None:
        self.pause(failure.delay_s)
        if failure.drop:
            exchange.drop()
        elif failure.status is not None:
            headers = {"retry-after": f"{failure.retry_after_s:g}"} if failure.retry_after_s is not None else {}
            exchange.reply(failure.status, _error(failure.message, failure.error_type, failure.code), headers)

    def _response_body(self, body: dict[str, Any], inputs: list[str], message: dict[str, Any]) -> dict[str, Any]:
        reply = message["content"][0]["text"]
        input_tokens, output_tokens = usage_for(inputs, reply)
        return {
            "id": f"resp_{next(self._ids):06d}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body.get("model", "gpt-standin"),
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "prompt": body.get("prompt"),
            "conversation": {"id": body["conversation"]}
            if isinstance(body.get("conversation"), str)
            else body.get("conversation"),
            "store": body.get("store", True),
            "text": {"format": {"type": "text"}},
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }

    def _next_failure(self, endpoint: Endpoint) -> Failure | None:
        with self._state:
            queue = self._failures[endpoint]
            return queue.popleft() if queue else None

    def _new_conversation(self, metadata: dict[str, str]) -> str:
        conversation_id = f"conv_{next(self._ids):06d}"
        self._conversations[conversation_id] = _Conversation(metadata=metadata, created_at=int(time.time()))
        return conversation_id

    def _land(self, conversation: _Conversation, inputs: list[str], prompt_id: str | None = None) -> dict[str, Any]:
        """Append the user inputs and the assistant reply; returns the reply item. Caller holds the lock."""
        for text in inputs:
            conversation.items.append(self._message("user", "input_text", text))
        text = echo_reply(inputs)
        if self.sign_with_prompt and prompt_id is not None:
            text = f"[{prompt_id}] {text}"
        reply = self._message("assistant", "output_text", text)
        conversation.items.append(reply)
        return reply

    def _message(self, role: str, part_type: str, text: str) -> dict[str, Any]:
        part: dict[str, Any] = {"type": part_type, "text": text}
        if part_type == "output_text":
            part["annotations"] = []
        return {
            "type": "message",
            "id": f"msg_{next(self._ids):06d}",
            "role": role,
            "status": "completed",
            "content": [part],
        }

    def _calls_locked(self, endpoint: Endpoint) -> list[object]:
        return [request for request in self._requests if _endpoint(request) == endpoint]


def _endpoint(request: RecordedRequest) -> Endpoint | None:
    method, parts = request.method, request.path.strip("/").split("/")
    if method == "POST" and parts == ["v1", "conversations"]:
        return "conversations"
    if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "conversations"] and parts[3] == "items":
        return "items"
    if method == "POST" and parts == ["v1", "responses"]:
        return "extractions" if _is_extraction(request.body) else "responses"
    return None


def _is_extraction(body: object) -> bool:
    if not isinstance(body, dict) or body.get("conversation") is not None:
        return False
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    return isinstance(text_format, dict) and text_format.get("type") == "json_schema"


def _schema_of(body: dict[str, Any]) -> dict[str, Any]:
    schema = body["text"]["format"].get("schema")
    return schema if isinstance(schema, dict) else {}


def _input_texts(value: object) -> list[str]:
    """The texts of a Responses `input`: a string, or a list of messages with string or part-list content."""
    if isinstance(value, str):
        return [value]
    texts: list[str] = []
    for item in value if isinstance(value, list) else []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append("".join(str(part.get("text", "")) for part in content if isinstance(part, dict)))
    return texts


def _error(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


if __name__ == "__main__":
    serve_from_command_line(
        "Stand-in OpenAI server (Conversations + Responses)",
        lambda arguments: StandInOpenAI(host=arguments.host, port=arguments.port, latency_ms=arguments.latency_ms),
    )
