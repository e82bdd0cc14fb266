"""What the stand-in HTTP servers share: a threaded server in the background, request records, JSON replies.

The stand-ins (OpenAI, Graph API) let tests and the benchmark drive the real `openai` and `requests`
clients over real sockets, with failures and latency scripted by the test.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON, or None
    client_port: int = 0  # the client's end of the connection: one port per connection it opened


class Exchange:
    """One request and the means to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, request: RecordedRequest) -> None:
        self._handler = handler
        self.request = request
        self._before_answer: list[Callable[[], None]] = []

    def before_answer(self, callback: Callable[[], None]) -> None:
        """Run `callback` once, just before the first byte of the answer (or the drop) goes out.

        What a stand-in counts as "under way" must end there: the client can act on the answer as soon
        as it is written, before the serving thread runs another line.
        """
        self._before_answer.append(callback)

    def _answering(self) -> None:
        callbacks, self._before_answer = self._before_answer, []
        for callback in callbacks:
            callback()

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._answering()
        payload = json.dumps(body).encode()
        handler = self._handler
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            # The client gave up (timeout, killed process); the request was still handled, as upstream would.
            handler.close_connection = True

    def drop(self) -> None:
        """Close the connection without any answer, like a proxy or server dying mid-request."""
        self._answering()
        self._handler.close_connection = True


class StandInServer:
    """A ThreadingHTTPServer on a background thread; subclasses answer in `handle`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0) -> None:
        self.latency_ms = latency_ms
        self._state = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        # A short poll interval: stop() waits for the loop's next poll, and tests stop a server each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed and held requests so their threads end
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state:
            return list(self._requests)

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Block until `condition()` holds (checked whenever a request is handled); TimeoutError otherwise."""
        with self._state:
            if not self._state.wait_for(condition, timeout=timeout):
                raise TimeoutError(f"{type(self).__name__}: gave up after {timeout} s waiting for {what}")

    def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=handler.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            client_port=int(handler.client_address[1]),
        )
        with self._state:
            self._requests.append(request)
            self._state.notify_all()
        self.handle(Exchange(handler, request))
        with self._state:
            self._state.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a held or delayed request must not keep the test process alive
    request_queue_size = 128  # the benchmark opens many connections at once


def _handler_for(owner: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the real APIs allow: the clients pool connections and the benchmark needs that.
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes; with Nagle's algorithm on, the body waits for
        # the client's delayed ACK of the headers, 40 ms on Linux: a stall the real APIs do not add,
        # measured as up to ~60 ms of every turn's overhead in the benchmark.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            owner._dispatch(self)

        def do_POST(self) -> None:
            owner._dispatch(self)

        def do_DELETE(self) -> None:
            owner._dispatch(self)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request stderr line; tests read `requests` instead."""

    return Handler


def serve_from_command_line(description: str, build: Callable[[argparse.Namespace], StandInServer]) -> None:
    """`python -m tests.support.standin_… --port N --latency-ms M`: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    arguments = parser.parse_args()
    server = build(arguments)
    done = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    server.start()
    print(f"{type(server).__name__} listening on {server.root_url}", flush=True)
    done.wait()
    server.stop()
