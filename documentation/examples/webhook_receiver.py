"""A receiver of mcagent's webhook notifications, to copy and adapt. Python 3.9+, standard library only.

    MCAGENT_WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080

For each POST it checks, in this order: the signature (an HMAC-SHA256 of the raw body under your
webhook secret, compared in constant time) else 401; the body, which must be JSON sent less than
five minutes ago (a replayed POST is stale) with the timestamp header matching, else 400. An event
it has seen before is answered 200 without being processed again: mcagent tries a delivery again
until it gets a 2xx, so the same `event_id` can arrive more than once.

Answer fast: mcagent waits only a few seconds. Do slow work after answering (a queue of your own).
Here the processed ids are kept in memory; keep yours where a restart does not lose them, for a day
at least (mcagent gives a delivery up 24 hours after the notification).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_AGE_S = 300
MAX_BODY = 1_000_000


class Rejected(Exception):
    """A POST that is not processed: `status` is the HTTP answer, `reason` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def verify(secret: str, raw_body: bytes, headers: Mapping[str, str], now: float) -> dict[str, Any]:
    """The event, if this POST came from mcagent and is recent; raises Rejected otherwise.
    Verify the bytes as they arrived: parsed and dumped again, JSON would not match the signature."""
    named = {name.lower(): value for name, value in headers.items()}
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    given = named.get("x-mcagent-signature", "").strip()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Rejected(401, "bad signature")
    try:
        event: dict[str, Any] = json.loads(raw_body)
        sent_at, event_id = int(event["sent_at"]), event["event_id"]
    except (ValueError, TypeError, KeyError):
        raise Rejected(400, "malformed: not an mcagent event") from None
    if not isinstance(event_id, str):
        raise Rejected(400, "malformed: event_id is not a string")
    if abs(now - sent_at) > MAX_AGE_S:
        raise Rejected(400, "stale: sent_at is more than 5 minutes from now")
    if named.get("x-mcagent-timestamp", "").strip() != str(sent_at):
        raise Rejected(400, "the timestamp header does not match sent_at")
    return event


class Receiver(ThreadingHTTPServer):
    """Serves the webhook and remembers what it accepted (`events`, in order)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, WebhookHandler)
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def accept(self, event: dict[str, Any]) -> None:
        """Process a verified event, once: a repeat of one processed already is dropped."""
        with self._lock:  # two attempts of one event can arrive at once
            if event["event_id"] in self._seen:
                return
            self._seen.add(event["event_id"])
            self.events.append(event)
        # Your processing goes here (or onto your queue, to answer fast).
        print(f"{event.get('type')} {event['event_id']}: {json.dumps(event.get('notification'))}", flush=True)


class WebhookHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise Rejected(400, "a body of 1 to 1,000,000 bytes is expected")
            raw_body = self.rfile.read(length)
            event = verify(self.server.secret, raw_body, dict(self.headers.items()), time.time())
        except ValueError:
            self._answer(400, "bad Content-Length")
        except Rejected as rejected:
            self._answer(rejected.status, rejected.reason)
        else:
            self.server.accept(event)
            self._answer(200, "ok")

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    port = int(arguments[0]) if arguments else 8080
    secret = os.environ.get("MCAGENT_WEBHOOK_SECRET")
    if not secret:
        sys.exit("set MCAGENT_WEBHOOK_SECRET to your webhook secret (whsec_...)")
    with Receiver(("", port), secret) as server:
        print(f"receiving mcagent webhooks on port {server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
