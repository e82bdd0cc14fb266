"""A stand-in for Meta's Graph API send endpoints (WhatsApp Cloud API, Instagram Messaging).

`POST /[vXX.X/]{phone_number_id}/messages` records what was sent and answers Meta's success body;
mark-as-read and Instagram sender actions are recorded apart. Failures (Meta error bodies, dropped
connections, delays) and latency are scripted by the test.

    python -m tests.support.standin_graph --port 8102 --latency-ms 150
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.support.standin_server import Exchange, RecordedRequest, StandInServer, serve_from_command_line

_MESSAGES_PATH = re.compile(r"^/(?:v\d+(?:\.\d+)?/)?(?P<account>[^/]+)/messages$")


@dataclass(frozen=True)
class SentMessage:
    channel: str  # "whatsapp" or "instagram"
    phone_number_id: str  # the WhatsApp phone-number id or the Instagram account id in the path
    to: str
    text: str
    authorization: str | None
    message_id: str  # the id the stand-in answered with


@dataclass(frozen=True)
class ReadReceipt:
    phone_number_id: str
    message_id: str | None  # WhatsApp: the inbound wamid marked read
    recipient_id: str | None  # Instagram: whom a sender action was for
    action: str  # "read" or the Instagram sender action
    authorization: str | None
    typing: str | None = None  # WhatsApp: the typing indicator's type the receipt carried ("text")


@dataclass(frozen=True)
class GraphFailure:
    """What the stand-in does instead of accepting one call: wait `delay_s`, then drop the connection or
    answer `http_status` with Meta's error body carrying `code`."""

    http_status: int = 400
    code: int = 131000
    message: str = "(#131000) Something went wrong"
    details: str = "Something went wrong"
    error_type: str = "OAuthException"
    delay_s: float = 0.0
    drop: bool = False

    @classmethod
    def reengagement(cls) -> GraphFailure:
        return cls(
            400,
            131047,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied "
            "to this number.",
        )

    @classmethod
    def throughput(cls) -> GraphFailure:
        return cls(429, 130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached.")

    @classmethod
    def token_expired(cls) -> GraphFailure:
        return cls(401, 190, "Error validating access token: Session has expired.", "The access token has expired.")

    @classmethod
    def server_error(cls) -> GraphFailure:
        return cls(500, 131000, "(#131000) Something went wrong", "Something went wrong")

    @classmethod
    def unavailable(cls) -> GraphFailure:
        return cls(503, 131016, "(#131016) Service unavailable", "Service temporarily unavailable")

    @classmethod
    def dropped(cls) -> GraphFailure:
        return cls(drop=True)

    @classmethod
    def slow(cls, delay_s: float) -> GraphFailure:
        """No answer before `delay_s` (then a 500 that a client with a shorter timeout never sees)."""
        return cls(500, 131000, "(#131000) Something went wrong", "Something went wrong", delay_s=delay_s)


class StandInGraph(StandInServer):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0, version: str = "v24.0") -> None:
        super().__init__(host=host, port=port, latency_ms=latency_ms)
        self.version = version
        self._sent: list[SentMessage] = []
        self._reads: list[ReadReceipt] = []
        self._failures: deque[GraphFailure] = deque()
        self._ids = itertools.count(1)
        #: While set, every call is answered with it: the Graph API is down.
        self.outage: GraphFailure | None = None

    @property
    def base_url(self) -> str:
        """What WHATSAPP_API_BASE_URL / INSTAGRAM_API_BASE_URL point at: the root plus the pinned version."""
        return f"{self.root_url}/{self.version}"

    def fail_next(self, *failures: GraphFailure) -> None:
        """Answer the next calls (sends or read receipts) with these failures, one each, in order."""
        with self._state:
            self._failures.extend(failures)

    @property
    def sent(self) -> list[SentMessage]:
        with self._state:
            return list(self._sent)

    @property
    def reads(self) -> list[ReadReceipt]:
        with self._state:
            return list(self._reads)

    def wait_for_sent(self, count: int, timeout: float = 10.0) -> list[SentMessage]:
        """Block until at least `count` messages were accepted; TimeoutError otherwise."""
        self.wait_until(lambda: len(self._sent) >= count, timeout=timeout, what=f"{count} sent messages")
        return self.sent

    def wait_for_reads(self, count: int, timeout: float = 10.0) -> list[ReadReceipt]:
        self.wait_until(lambda: len(self._reads) >= count, timeout=timeout, what=f"{count} read receipts")
        return self.reads

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        match = _MESSAGES_PATH.match(request.path)
        if request.method != "POST" or match is None:
            exchange.reply(400, _error(100, "Unsupported request", f"Unknown path components: {request.path}"))
            return
        failure = self._next_failure(request)
        if failure is not None:
            self.pause(failure.delay_s)
            if failure.drop:
                exchange.drop()
            else:
                exchange.reply(
                    failure.http_status, _error(failure.code, failure.message, failure.details, failure.error_type)
                )
            return
        self.pause(self.latency_ms / 1000)
        body = request.body if isinstance(request.body, dict) else {}
        account = match["account"]
        authorization = request.headers.get("authorization")
        if body.get("messaging_product") == "whatsapp":
            self._whatsapp(exchange, account, body, authorization)
        elif isinstance(body.get("recipient"), dict):
            self._instagram(exchange, account, body, authorization)
        else:
            exchange.reply(400, _error(100, "(#100) Invalid parameter", "The parameter messaging_product is required."))

    def _next_failure(self, request: RecordedRequest) -> GraphFailure | None:
        """How to fail this call instead of accepting it, if at all: the outage, or the next scripted failure
        (a subclass may add its own)."""
        with self._state:
            return self.outage or (self._failures.popleft() if self._failures else None)

    def _whatsapp(self, exchange: Exchange, account: str, body: dict[str, Any], authorization: str | None) -> None:
        if body.get("status") == "read":
            with self._state:
                indicator = body.get("typing_indicator")
                typing = indicator.get("type") if isinstance(indicator, dict) else None
                self._reads.append(ReadReceipt(account, body.get("message_id"), None, "read", authorization, typing))
            exchange.reply(200, {"success": True})
            return
        text = (body.get("text") or {}).get("body")
        if body.get("type") != "text" or not isinstance(text, str):
            exchange.reply(400, _error(100, "(#100) Invalid parameter", "Only text messages are accepted here."))
            return
        to = str(body.get("to", ""))
        with self._state:
            message_id = f"wamid.STANDIN{next(self._ids):08d}"
            self._sent.append(SentMessage("whatsapp", account, to, text, authorization, message_id))
        exchange.reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": message_id}],
            },
        )

    def _instagram(self, exchange: Exchange, account: str, body: dict[str, Any], authorization: str | None) -> None:
        recipient = str(body["recipient"].get("id", ""))
        action = body.get("sender_action")
        if isinstance(action, str):
            with self._state:
                self._reads.append(ReadReceipt(account, None, recipient, action, authorization))
            exchange.reply(200, {"recipient_id": recipient})
            return
        text = (body.get("message") or {}).get("text")
        if not isinstance(text, str):
            exchange.reply(400, _error(100, "(#100) Invalid parameter", "message.text is required."))
            return
        with self._state:
            message_id = f"mid.STANDIN{next(self._ids):08d}"
            self._sent.append(SentMessage("instagram", account, recipient, text, authorization, message_id))
        exchange.reply(200, {"recipient_id": recipient, "message_id": message_id})


def _error(code: int, message: str, details: str, error_type: str = "OAuthException") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": error_type,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AStandInTrace",
        }
    }


if __name__ == "__main__":
    serve_from_command_line(
        "Stand-in Graph API server (WhatsApp and Instagram sends)",
        lambda arguments: StandInGraph(host=arguments.host, port=arguments.port, latency_ms=arguments.latency_ms),
    )
