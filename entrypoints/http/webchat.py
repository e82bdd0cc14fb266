"""The web chat widget's public endpoints (no API key), keyed by the widget id, and the widget's script.

    GET  /widget.js                          the script a site embeds
    POST /webchat/{widget_id}/sessions       start, or resume with a previous token, a visitor session
    GET  /webchat/{widget_id}/messages       the visitor's history after a cursor (`wait`: long polling)
    POST /webchat/{widget_id}/messages       the visitor writes
    GET  /webchat/{widget_id}/events         live: server-sent events until the stream's time is up

A visitor proves itself with `Authorization: Bearer <token>` (EventSource cannot send headers; the widget
reads the stream with fetch). Cross-origin: every answer to an allowed page carries
`Access-Control-Allow-Origin` for it, and preflights are answered here; a page on a site the widget does not
list gets 403 `origin_not_allowed` (domain/webchat.py, "which sites may embed the widget").

Live replies are server-sent events. Each open stream holds one gunicorn thread while it waits, so a process
streams to at most `WEBCHAT_MAX_STREAMS` widgets at once; beyond that a stream answers what there is and asks
the widget to come back in a few seconds (polling, never a starved webhook). Streams end after
`WEBCHAT_STREAM_SECONDS` and the widget reconnects from the cursor it was given, so a token that expires or a
process that restarts is noticed within that time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from importlib import resources

from attrs import field, frozen
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from application.ports.webchat import Signal
from application.use_cases.send_visitor_message import SendVisitorMessageCommand
from application.use_cases.start_visitor_session import StartVisitorSessionCommand
from domain import limits
from domain.messages import Direction, Message
from domain.webchat import VISITOR_TEXT, Timeline, VisitorSession
from entrypoints.http.api.payloads import _bounded, int_param, read_body
from entrypoints.http.errors import ApiError
from entrypoints.http.services import container

webchat = Blueprint("webchat", __name__)

#: A visitor's request body: a message at its bound, every character escaped, and room for the rest.
BODY_BYTES = 16 * 1024
#: The longest a long poll (`GET …/messages?wait=`) is held.
LONGEST_WAIT_S = 25
#: A comment on an idle stream this often keeps proxies from closing it, and finds a gone browser.
KEEPALIVE_S = 15
#: What the widget is told to wait before it reconnects: after a normal end, and when the process is full.
RECONNECT_MS = 500
BUSY_RECONNECT_MS = 3_000
_CORS_MAX_AGE_S = 600
_EXTENSION = "webchat_streams"


@frozen
class SessionRequest:
    token: str | None = field(default=None, repr=False, metadata=_bounded(512))


@frozen
class VisitorMessageRequest:
    text: str = field(metadata=_bounded(VISITOR_TEXT))
    client_message_id: str = field(metadata=_bounded(64))


def allow_streams(app: Flask, streams: int) -> None:
    """How many live streams `app`'s process holds open at once (each holds a thread)."""
    app.extensions[_EXTENSION] = threading.BoundedSemaphore(streams) if streams > 0 else None


# --- the script ------------------------------------------------------------------------------------


@webchat.get("/widget.js")
def widget_script() -> ResponseReturnValue:
    script = resources.files("entrypoints.http").joinpath("static/widget.js").read_bytes()
    response = Response(script, content_type="text/javascript; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- sessions and messages -------------------------------------------------------------------------


@webchat.post("/webchat/<id:widget_id>/sessions")
def start_session(widget_id: str) -> ResponseReturnValue:
    body = read_body(SessionRequest) if request.get_data() else SessionRequest()
    started = container().start_visitor_session()(
        StartVisitorSessionCommand(widget_id=widget_id, origin=_origin(), previous_token=body.token)
    )
    answer = {
        "token": started.token,
        "visitor_id": started.session.visitor_id,
        "expires_at": started.session.expires_at.isoformat(),
        "widget": {"title": started.title},
    }
    return jsonify(answer), 200 if started.resumed else 201


@webchat.post("/webchat/<id:widget_id>/messages")
def send_message(widget_id: str) -> ResponseReturnValue:
    if (request.content_length or 0) > BODY_BYTES or len(request.get_data()) > BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"a message's request body is at most {BODY_BYTES} bytes")
    body = read_body(VisitorMessageRequest)
    sent = container().send_visitor_message()(
        SendVisitorMessageCommand(
            widget_id=widget_id,
            origin=_origin(),
            token=_token(),
            text=body.text,
            client_message_id=body.client_message_id,
            correlation_id=g.get("correlation_id"),
        )
    )
    return jsonify(message=message_json(sent.message, sent.message.message_id)), 200 if sent.duplicate else 202


@webchat.get("/webchat/<id:widget_id>/messages")
def read_messages(widget_id: str) -> ResponseReturnValue:
    after = int_param(request.args, "after", minimum=0)
    wait = int_param(request.args, "wait", minimum=0, maximum=LONGEST_WAIT_S) or 0
    _, session = container().widget_access().visitor(widget_id, _origin(), _token())
    read = container().read_visitor_timeline()
    watch = container().visitor_signals().watch(session.widget_id, session.visitor_id) if wait else None
    try:
        deadline = time.monotonic() + wait
        timeline = read(session, after)
        while watch is not None and not timeline.shown and timeline.cursor == after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            watch.wait(remaining)
            timeline = read(session, after)
    finally:
        if watch is not None:
            watch.close()
    return jsonify(
        messages=[message_json(message, timeline.cursor) for message in timeline.shown], cursor=timeline.cursor
    )


# --- live -------------------------------------------------------------------------------------------


@webchat.get("/webchat/<id:widget_id>/events")
def events(widget_id: str) -> ResponseReturnValue:
    after = int_param(request.args, "after", minimum=0)
    _, session = container().widget_access().visitor(widget_id, _origin(), _token())
    streams: threading.BoundedSemaphore | None = current_app.extensions.get(_EXTENSION)
    live = streams is not None and streams.acquire(blocking=False)
    seconds = container().settings().webchat_stream_seconds if live else 0
    body = _stream(session, after, seconds=seconds, release=streams if live else None)
    response = Response(stream_with_context(body), content_type="text/event-stream; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _stream(
    session: VisitorSession, after: int | None, *, seconds: float, release: threading.BoundedSemaphore | None
) -> Iterator[str]:
    """What the visitor has not seen after `after`, then each new message and typing signal as it comes,
    for `seconds` (0: what there is now, then come back later)."""
    read = container().read_visitor_timeline()
    watch = container().visitor_signals().watch(session.widget_id, session.visitor_id)
    emitted: set[int] = set()
    try:
        yield f"retry: {RECONNECT_MS if seconds else BUSY_RECONNECT_MS}\n\n"
        deadline = time.monotonic() + seconds
        cursor = after
        while True:
            timeline = read(session, cursor)
            yield from _new_messages(timeline, emitted)
            cursor = timeline.cursor
            emitted = {message_id for message_id in emitted if message_id > cursor}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            signals = watch.wait(min(remaining, KEEPALIVE_S))
            if Signal.TYPING in signals:
                yield "event: typing\ndata: {}\n\n"
            elif not signals:
                yield ": keepalive\n\n"
    finally:
        watch.close()
        if release is not None:
            release.release()


def _new_messages(timeline: Timeline, emitted: set[int]) -> Iterator[str]:
    for message in timeline.shown:
        if message.message_id in emitted:
            continue
        emitted.add(message.message_id)
        data = json.dumps(message_json(message, timeline.cursor), ensure_ascii=False)
        yield f"event: message\nid: {timeline.cursor}\ndata: {data}\n\n"


def message_json(message: Message, cursor: int) -> dict[str, object]:
    """A message as the widget shows it. `cursor`: where to read from next to miss nothing after it."""
    inbound = message.direction is Direction.INBOUND
    return {
        "id": f"msg_{message.message_id}",
        "cursor": cursor,
        "from": "visitor" if inbound else "agent",
        "author": None if inbound else message.sender.value,
        "text": message.text or "",
        "created_at": message.created_at.isoformat(),
    }


# --- who is asking ------------------------------------------------------------------------------------


def _origin() -> str | None:
    return request.headers.get("Origin")


def _token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and 0 < len(token) <= limits.ACCESS_TOKEN else None


@webchat.before_request
def _preflight() -> ResponseReturnValue | None:
    """A browser asks before a cross-site call with a token or a JSON body: answered for an allowed page."""
    if request.method != "OPTIONS" or request.view_args is None or "widget_id" not in request.view_args:
        return None
    container().widget_access().widget(request.view_args["widget_id"], _origin())
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Correlation-Id"
    response.headers["Access-Control-Max-Age"] = str(_CORS_MAX_AGE_S)
    return response


@webchat.after_request
def _cross_origin(response: Response) -> Response:
    """Let an allowed page read the answer. A refused page (403) is not told it may; nor is anyone for the
    script, which a `<script>` tag loads without asking."""
    origin = _origin()
    response.headers.add("Vary", "Origin")
    if origin and response.status_code != 403 and request.path != "/widget.js":
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After, X-Correlation-Id"
    return response
