"""OpenAIResponder driving the real `openai` SDK against the stand-in OpenAI server."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from adapters.circuit import Circuit
from adapters.openai.responder import OpenAIResponder, is_outage
from application.ports.services import AIRequest, AIRequestFailed
from tests.support.garbage import left_in_cycles
from tests.support.standin_openai import Failure, StandInOpenAI, echo_reply, usage_for
from tests.support.standin_server import RecordedRequest

API_KEY = "sk-test-0123456789abcdef"

MakeResponder = Callable[..., OpenAIResponder]


@pytest.fixture
def standin() -> Iterator[StandInOpenAI]:
    with StandInOpenAI() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_responder(standin: StandInOpenAI, sleeps: list[float]) -> MakeResponder:
    def make(**overrides: object) -> OpenAIResponder:
        options: dict[str, object] = {
            "api_key": API_KEY,
            "base_url": standin.base_url,
            "timeout_ms": 2000,
            "max_retries": 3,
            "sleep": sleeps.append,  # the backoff is recorded, not waited for
        }
        options.update(overrides)
        return OpenAIResponder(**options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def responder(make_responder: MakeResponder) -> OpenAIResponder:
    return make_responder()


@pytest.fixture
def conversation(standin: StandInOpenAI) -> str:
    return standin.create_conversation()


def ask(conversation: str, *inputs: str, **fields: object) -> AIRequest:
    return AIRequest("pmpt_abc", "7", conversation, inputs, **fields)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the happy path --------------------------------------------------------------------------------


def test_start_conversation_creates_one_with_the_metadata(responder: OpenAIResponder, standin: StandInOpenAI) -> None:
    conversation_id = responder.start_conversation(metadata={"user_id": "usr_1", "conversation_id": "42"})

    assert conversation_id.startswith("conv_")
    assert standin.calls("conversations") == [{"metadata": {"user_id": "usr_1", "conversation_id": "42"}}]
    assert standin.metadata(conversation_id) == {"user_id": "usr_1", "conversation_id": "42"}


def test_request_body_is_prompt_conversation_inputs_and_store(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    responder.respond(ask(conversation, "Hi", "Do you open on Sundays?"))

    assert standin.calls("responses") == [
        {
            "prompt": {"id": "pmpt_abc", "version": "7"},
            "conversation": conversation,
            "input": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Do you open on Sundays?"}],
            "store": True,
        }
    ]


def test_prompt_version_is_left_out_when_the_agent_has_none(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    responder.respond(AIRequest("pmpt_abc", None, conversation, ("Hi",)))

    assert standin.calls("responses")[0]["prompt"] == {"id": "pmpt_abc"}


def test_reply_carries_text_response_id_usage_and_last_item(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    reply = responder.respond(ask(conversation, "Hi", "there"))

    expected_text = echo_reply(["Hi", "there"])
    assert reply.text == expected_text
    assert reply.response_id is not None and reply.response_id.startswith("resp_")
    assert (reply.input_tokens, reply.output_tokens) == usage_for(["Hi", "there"], expected_text)
    assert reply.last_item_id == standin.items(conversation)[-1]["id"]


def test_key_is_sent_as_bearer_and_the_sdk_does_not_retry_by_itself(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str
) -> None:
    make_responder(timeout_ms=1500).respond(ask(conversation, "Hi"))

    headers = standin.requests[-1].headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["x-stainless-retry-count"] == "0"
    assert headers["x-stainless-read-timeout"] == "1.5"


# --- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [Failure.rate_limited(), Failure.server_error(), Failure(503), Failure.conversation_locked(), Failure.dropped()],
    ids=["429", "500", "503", "conversation_locked", "dropped_connection"],
)
def test_transient_failure_is_retried_and_answered(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float], failure: Failure
) -> None:
    standin.fail_next(failure)

    reply = responder.respond(ask(conversation, "Hi"))

    assert reply.text == echo_reply(["Hi"])
    assert len(standin.calls("responses")) == 2
    assert len(sleeps) == 1
    assert standin.transcript(conversation) == [("user", "Hi"), ("assistant", echo_reply(["Hi"]))]


def test_timeout_is_retried(make_responder: MakeResponder, standin: StandInOpenAI, conversation: str) -> None:
    standin.lock_conversations = False  # the unanswered call holds OpenAI's lock; that case has its own test below
    standin.fail_next(Failure.no_answer(delay_s=2.0))

    reply = make_responder(timeout_ms=400).respond(ask(conversation, "Hi"))

    assert reply.text == echo_reply(["Hi"])
    assert len(standin.calls("responses")) == 2


def test_connection_refused_is_retried_then_fails_as_retryable(
    make_responder: MakeResponder, sleeps: list[float]
) -> None:
    responder = make_responder(base_url=f"http://127.0.0.1:{closed_port()}/v1", max_retries=2)

    with pytest.raises(AIRequestFailed) as failed:
        responder.respond(ask("conv_1", "Hi"))

    assert failed.value.retryable
    assert "after 3 attempts" in failed.value.reason
    assert "could not connect to OpenAI" in failed.value.reason
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure.bad_request("Invalid value for 'input'."), "HTTP 400 invalid_value: Invalid value for 'input'."),
        (Failure.unauthorized(), "HTTP 401 invalid_api_key: Incorrect API key provided."),
        (Failure.not_found(), "HTTP 404: Prompt with id 'pmpt_x' not found."),
        (Failure(422, None, "Unprocessable", "invalid_request_error"), "HTTP 422: Unprocessable"),
    ],
    ids=["400", "401", "404", "422"],
)
def test_client_errors_are_not_retried(
    responder: OpenAIResponder,
    standin: StandInOpenAI,
    conversation: str,
    sleeps: list[float],
    failure: Failure,
    expected: str,
) -> None:
    standin.fail_next(failure)

    with pytest.raises(AIRequestFailed) as failed:
        responder.respond(ask(conversation, "Hi"))

    assert not failed.value.retryable
    assert expected in failed.value.reason
    assert len(standin.calls("responses")) == 1
    assert sleeps == []


def test_gives_up_after_max_retries_with_the_last_reason(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float]
) -> None:
    standin.fail_next(*[Failure.rate_limited()] * 3)

    with pytest.raises(AIRequestFailed) as failed:
        make_responder(max_retries=2).respond(ask(conversation, "Hi"))

    assert failed.value.retryable
    assert failed.value.reason == (
        "OpenAI respond failed after 3 attempts: "
        "HTTP 429 rate_limit_exceeded: Rate limit reached. Please try again later."
    )
    assert len(standin.calls("responses")) == 3
    assert len(sleeps) == 2


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float]
) -> None:
    standin.fail_next(*[Failure.conversation_locked()] * 6)

    make_responder(max_retries=6, backoff_base_ms=100, backoff_max_ms=1000).respond(ask(conversation, "Hi"))

    assert len(sleeps) == 6
    for retry, slept in enumerate(sleeps):
        floor = min(0.1 * 2**retry, 1.0)
        assert floor <= slept <= min(floor + 0.1, 1.0)


def test_retry_after_of_a_429_is_honoured_up_to_the_cap(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float]
) -> None:
    standin.fail_next(Failure.rate_limited(retry_after_s=3), Failure.rate_limited(retry_after_s=60))

    make_responder(backoff_max_ms=8000).respond(ask(conversation, "Hi"))

    assert 3 <= sleeps[0] < 4
    assert sleeps[1] == 8


def test_start_conversation_is_retried_and_reports_client_errors(
    responder: OpenAIResponder, standin: StandInOpenAI
) -> None:
    standin.fail_next(Failure.server_error(), endpoint="conversations")
    assert responder.start_conversation(metadata={}).startswith("conv_")

    standin.fail_next(Failure.unauthorized(), endpoint="conversations")
    with pytest.raises(AIRequestFailed) as failed:
        responder.start_conversation(metadata={})
    assert not failed.value.retryable
    assert "HTTP 401" in failed.value.reason


def test_each_retry_is_logged_with_reason_and_attempt_and_never_the_key(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    standin.fail_next(Failure.server_error(), Failure(401, "invalid_api_key", f"Incorrect API key provided: {API_KEY}"))

    with capture_logs() as logs, pytest.raises(AIRequestFailed) as failed:
        responder.respond(ask(conversation, "Hi"))

    retries = [entry for entry in logs if entry["event"] == "openai_retry"]
    assert [(entry["attempt"], entry["reason"]) for entry in retries] == [
        (1, "HTTP 500: The server had an error while processing your request. Sorry about that!")
    ]
    assert API_KEY not in "".join(traceback.format_exception(failed.value))
    assert "Incorrect API key provided: ***" in failed.value.reason
    assert all(API_KEY not in repr(entry) for entry in logs)


# --- reconciliation: a turn never lands twice ------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [Failure.land_then_hang(delay_s=3.0), Failure.land_then_fail(500), Failure.dropped(land=True)],
    ids=["timeout", "500", "dropped_connection"],
)
def test_turn_that_landed_before_an_ambiguous_failure_is_recovered_not_asked_again(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, failure: Failure
) -> None:
    earlier = standin.append_turn(conversation, ["Hello"])
    standin.fail_next(failure)

    reply = make_responder(timeout_ms=500).respond(ask(conversation, "Price?", "For two", after_item_id=earlier))

    assert reply.text == echo_reply(["Price?", "For two"])
    assert reply.response_id is None and reply.input_tokens is None and reply.output_tokens is None
    assert reply.last_item_id == standin.items(conversation)[-1]["id"]
    assert len(standin.calls("responses")) == 1
    assert standin.calls("items") == [{"after": earlier, "order": "asc", "limit": "100"}]
    assert standin.transcript(conversation) == [
        ("user", "Hello"),
        ("assistant", echo_reply(["Hello"])),
        ("user", "Price?"),
        ("user", "For two"),
        ("assistant", echo_reply(["Price?", "For two"])),
    ]


def test_ambiguous_failure_that_did_not_land_is_asked_again_once(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str
) -> None:
    standin.lock_conversations = False  # the unanswered call holds OpenAI's lock; that case has its own test below
    standin.fail_next(Failure.no_answer(delay_s=2.0))

    reply = make_responder(timeout_ms=400).respond(ask(conversation, "Hi"))

    assert reply.response_id is not None
    assert len(standin.calls("items")) == 1
    assert standin.transcript(conversation) == [("user", "Hi"), ("assistant", echo_reply(["Hi"]))]


def test_clear_refusal_does_not_trigger_a_look_for_a_landed_reply(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    standin.fail_next(Failure.rate_limited(), Failure.conversation_locked())

    responder.respond(ask(conversation, "Hi"))

    assert standin.calls("items") == []


def test_call_still_running_when_retried_meets_the_lock_and_its_late_reply_is_recovered(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str
) -> None:
    # The first call is held by "OpenAI" past the client's timeout; it lands while the client waits between
    # its retries (the third wait), not at a moment of the machine's choosing: between a look into the
    # conversation and the ask that follows it, a landing would make a second answer, which nothing can
    # tell apart beforehand (the call's own answer never arrives).
    hold = standin.hold()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            hold.release()
            standin.wait_until(lambda: len(standin.transcript(conversation)) == 2, timeout=10, what="the late reply")
        time.sleep(seconds)

    responder = make_responder(timeout_ms=200, max_retries=20, backoff_base_ms=50, backoff_max_ms=200, sleep=sleep)

    reply = responder.respond(ask(conversation, "Hi"))

    assert reply.text == echo_reply(["Hi"])
    assert reply.response_id is None  # taken from the conversation, not from a second answer
    assert standin.max_in_flight(conversation) == 2  # the retry met OpenAI's conversation lock
    assert standin.transcript(conversation) == [("user", "Hi"), ("assistant", echo_reply(["Hi"]))]


def test_resumed_turn_finds_the_reply_that_landed_before_a_crash(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    earlier = standin.append_turn(conversation, ["Hello"])
    landed = standin.append_turn(conversation, ["Book me for Friday"])

    reply = responder.respond(ask(conversation, "Book me for Friday", after_item_id=earlier, resumed=True))

    assert reply.text == echo_reply(["Book me for Friday"])
    assert reply.last_item_id == landed
    assert standin.calls("responses") == []


def test_resumed_turn_that_never_landed_is_asked(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    earlier = standin.append_turn(conversation, ["Hello"])

    reply = responder.respond(ask(conversation, "Book me for Friday", after_item_id=earlier, resumed=True))

    assert reply.response_id is not None
    assert standin.calls("items") == [{"after": earlier, "order": "asc", "limit": "100"}]
    assert len(standin.calls("responses")) == 1


def test_resumed_first_turn_reads_the_whole_conversation_and_takes_the_latest_match(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    standin.append_turn(conversation, ["Hi"])
    latest = standin.append_turn(conversation, ["Hi"])

    reply = responder.respond(ask(conversation, "Hi", resumed=True))

    assert reply.last_item_id == latest
    assert standin.calls("items") == [{"order": "asc", "limit": "100"}]
    assert standin.calls("responses") == []


def test_reading_back_a_long_conversation_follows_every_page(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    for number in range(60):  # 120 items: two pages of 100
        standin.append_turn(conversation, [f"message {number}"])

    reply = responder.respond(ask(conversation, "message 59", resumed=True))

    assert reply.text == echo_reply(["message 59"])
    assert len(standin.calls("items")) == 2


# --- the stand-in's hold, which process-kill tests rely on -----------------------------------------


def test_held_call_waits_until_released_and_then_lands(
    responder: OpenAIResponder, standin: StandInOpenAI, conversation: str
) -> None:
    hold = standin.hold()
    replies = []
    caller = threading.Thread(target=lambda: replies.append(responder.respond(ask(conversation, "Hi"))))
    caller.start()

    hold.wait_arrived(1, timeout=5)
    assert standin.items(conversation) == [] and replies == []
    hold.release()
    caller.join(timeout=5)

    assert [reply.text for reply in replies] == [echo_reply(["Hi"])]
    assert standin.transcript(conversation) == [("user", "Hi"), ("assistant", echo_reply(["Hi"]))]


def test_waiting_for_another_call_on_the_conversation_uses_up_no_retry(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float]
) -> None:
    standin.fail_next(*[Failure.conversation_locked()] * 5)

    reply = make_responder(max_retries=1, backoff_base_ms=100, backoff_max_ms=400).respond(ask(conversation, "Hi"))

    assert reply.text == echo_reply(["Hi"])
    assert len(standin.calls("responses")) == 6


def test_a_conversation_locked_for_longer_than_every_attempt_could_take_fails_the_call(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str, sleeps: list[float]
) -> None:
    standin.fail_next(*[Failure.conversation_locked()] * 50)
    responder = make_responder(timeout_ms=500, max_retries=1, backoff_base_ms=100, backoff_max_ms=200)

    with pytest.raises(AIRequestFailed) as failed:
        responder.respond(ask(conversation, "Hi"))

    assert "conversation_locked" in failed.value.reason
    assert 1.0 <= sum(sleeps) < 1.0 + 0.2  # waited out two attempts' worth (2 × 500 ms), then gave up


def test_after_repeated_outages_the_circuit_opens_and_respond_fails_at_once_as_retryable(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str
) -> None:
    circuit = Circuit("openai", failures=4, reset_after_s=60.0, is_outage=is_outage)
    responder = make_responder(max_retries=3, circuit=circuit)
    standin.fail_next(*[Failure.server_error()] * 4)
    with pytest.raises(AIRequestFailed) as first:
        responder.respond(ask(conversation, "Hi"))
    asked = len(standin.calls("responses"))

    with pytest.raises(AIRequestFailed) as second:
        responder.respond(ask(conversation, "Hi"))

    assert first.value.retryable and second.value.retryable
    assert "circuit is open" in second.value.reason
    assert not responder.available
    assert len(standin.calls("responses")) == asked == 4


def test_a_refused_request_does_not_count_toward_the_circuit(
    make_responder: MakeResponder, standin: StandInOpenAI, conversation: str
) -> None:
    circuit = Circuit("openai", failures=2, reset_after_s=60.0, is_outage=is_outage)
    responder = make_responder(max_retries=0, circuit=circuit)
    standin.fail_next(Failure.bad_request(), Failure.bad_request())
    for _ in range(2):
        with pytest.raises(AIRequestFailed) as failed:
            responder.respond(ask(conversation, "Hi"))
        assert not failed.value.retryable

    assert responder.available


# --- connections -----------------------------------------------------------------------------------


def responses_of(standin: StandInOpenAI) -> list[RecordedRequest]:
    return [request for request in standin.requests if request.path.endswith("/responses")]


def test_calls_one_after_another_share_one_kept_alive_connection(
    responder: OpenAIResponder, standin: StandInOpenAI
) -> None:
    for n in range(5):
        responder.respond(ask(standin.create_conversation(), f"Hi {n}"))

    assert len({request.client_port for request in responses_of(standin)}) == 1


def test_calls_at_once_each_have_a_connection_and_keep_it_for_the_next_round(
    responder: OpenAIResponder, standin: StandInOpenAI
) -> None:
    standin.latency_ms = 200  # long enough for the calls of a round to overlap
    conversations = [standin.create_conversation() for _ in range(6)]

    def round_of_calls() -> set[int]:
        start = threading.Barrier(len(conversations))
        answered: list[str] = []

        def call(conversation: str) -> None:
            start.wait()
            answered.append(responder.respond(ask(conversation, "Hi")).text)

        before = len(responses_of(standin))
        threads = [threading.Thread(target=call, args=(conversation,)) for conversation in conversations]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert answered == [echo_reply(["Hi"])] * len(conversations)
        return {request.client_port for request in responses_of(standin)[before:]}

    first, second = round_of_calls(), round_of_calls()

    assert len(first) == len(conversations)  # no call waited for another's connection
    assert second == first  # and none was opened again


# --- memory ----------------------------------------------------------------------------------------


def test_an_answered_call_leaves_nothing_for_the_garbage_collector(
    responder: OpenAIResponder, standin: StandInOpenAI
) -> None:
    """Garbage in reference cycles waits for the collector, whose passes stop every thread of a worker."""
    responder.respond(ask(standin.create_conversation(), "warm up"))  # the SDK's first use builds what it keeps
    conversation = standin.create_conversation()

    assert left_in_cycles(lambda: responder.respond(ask(conversation, "Hi"))) == []


def test_each_call_has_its_own_retry_budget(make_responder: MakeResponder, standin: StandInOpenAI) -> None:
    """One retry policy serves every call: what one call spent is not the next one's."""
    responder = make_responder(max_retries=1)
    standin.fail_next(Failure.server_error(), Failure.server_error())
    with pytest.raises(AIRequestFailed, match="after 2 attempts"):
        responder.respond(ask(standin.create_conversation(), "Hi"))

    standin.fail_next(Failure.server_error())
    reply = responder.respond(ask(standin.create_conversation(), "Hi"))

    assert reply.text == echo_reply(["Hi"])
