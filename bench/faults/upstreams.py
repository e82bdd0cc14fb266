"""The stand-ins for OpenAI and the Graph API, run in the harness's process so that a fault can switch their
failures on and off: an outage (every call fails) or a share of calls failing at random. What they injected
is counted, and the Graph stand-in keeps the replies it refused, so a message lost that way can be told apart
from one never answered."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Generic, TextIO, TypeVar

from adapters.meta.whatsapp import RETRY_SAFE_CODES
from bench.analysis import Reply
from bench.graph_recorder import RecordingGraph
from tests.support.standin_graph import GraphFailure
from tests.support.standin_openai import Endpoint, Failure, StandInOpenAI
from tests.support.standin_server import RecordedRequest

F = TypeVar("F")

#: What OpenAI answers while it is down (its 503 body); every endpoint answers it.
OPENAI_UNAVAILABLE = Failure(503, None, "The server is overloaded or not ready yet.", "server_error")

#: OpenAI failing now and then: rate limited (saying when to come back), a 500 before or after the turn
#: landed in the conversation, and another call said to be operating on the conversation.
OPENAI_SOMETIMES = (
    Failure.rate_limited(retry_after_s=1.0),
    Failure.server_error(),
    Failure.land_then_fail(500),
    Failure.conversation_locked(),
)

#: The Graph API failing now and then: "something went wrong" (500, code 131000) and the throughput limit
#: (429, code 130429), on sends and read receipts alike.
GRAPH_SOMETIMES = (GraphFailure.server_error(), GraphFailure.throughput())


@dataclass(frozen=True)
class AtRandom(Generic[F]):
    rate: float  # share of calls that fail
    failures: tuple[F, ...]  # one picked at random for each failing call


def describe_openai(failure: Failure) -> str:
    landed = " after landing" if failure.land else ""
    return f"{failure.status} {failure.code or failure.error_type}{landed}"


class FaultyOpenAI(StandInOpenAI):
    def __init__(self, *, latency_ms: int, seed: int) -> None:
        super().__init__(latency_ms=latency_ms)
        self._rng = random.Random(seed)
        self._outage: Failure | None = None
        self._at_random: AtRandom[Failure] | None = None
        self.injected: Counter[str] = Counter()

    def go_down(self, failure: Failure = OPENAI_UNAVAILABLE) -> None:
        with self._state:
            self._outage = failure

    def come_back(self) -> None:
        with self._state:
            self._outage = None

    def fail_at_random(self, failures: AtRandom[Failure] | None) -> None:
        """Fail this share of calls from now on (None: stop). Only a response can land before failing or be
        refused with `conversation_locked`; the other endpoints get the other failures."""
        with self._state:
            self._at_random = failures

    def responses_calls(self) -> int:
        return len(self.calls("responses"))

    def _next_failure(self, endpoint: Endpoint) -> Failure | None:
        failure = super()._next_failure(endpoint)
        with self._state:
            if failure is None and self._outage is not None:
                failure = self._outage
            elif failure is None and self._at_random is not None and self._rng.random() < self._at_random.rate:
                allowed = [
                    candidate
                    for candidate in self._at_random.failures
                    if endpoint == "responses" or not (candidate.land or candidate.code == "conversation_locked")
                ]
                failure = self._rng.choice(allowed)
            if failure is not None:
                self.injected[f"{endpoint}: {describe_openai(failure)}"] += 1
        return failure


class FaultyGraph(RecordingGraph):
    def __init__(self, out: TextIO, *, seed: int) -> None:
        super().__init__(out)
        self._rng = random.Random(seed)
        self._at_random: AtRandom[GraphFailure] | None = None
        self.injected: Counter[str] = Counter()
        self.refused: list[Reply] = []  # the replies it failed instead of sending, with their arrival
        #: Of those, the ones refused with a failure that may have gone out (a 5xx, 131000): the product sends
        #: such a reply once and stores the failure with Meta's code, by design, never a second time.
        self.refused_final: list[Reply] = []

    def fail_at_random(self, failures: AtRandom[GraphFailure] | None) -> None:
        with self._state:
            self._at_random = failures

    def _next_failure(self, request: RecordedRequest) -> GraphFailure | None:
        failure = super()._next_failure(request)
        with self._state:
            if failure is None and self._at_random is not None and self._rng.random() < self._at_random.rate:
                failure = self._rng.choice(self._at_random.failures)
            if failure is not None:
                body = request.body if isinstance(request.body, dict) else {}
                if body.get("status") == "read":
                    self.injected[f"read receipt: {failure.http_status} ({failure.code})"] += 1
                else:
                    self.injected[f"reply: {failure.http_status} ({failure.code})"] += 1
                    text = str((body.get("text") or {}).get("body", ""))
                    account = request.path.rstrip("/").split("/")[-2]  # …/{phone_number_id}/messages
                    reply = Reply(time.monotonic(), account, str(body.get("to", "")), text)
                    self.refused.append(reply)
                    if str(failure.code) not in RETRY_SAFE_CODES:
                        self.refused_final.append(reply)
        return failure
