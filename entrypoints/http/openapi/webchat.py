"""The web chat widget's public endpoints (no API key; a visitor token) and its script."""

from __future__ import annotations

from domain import limits
from domain.webchat import HISTORY, VISITOR_TEXT
from entrypoints.http.openapi.components import answer, operation, path_id, query
from entrypoints.http.openapi.schemas import JsonSchema, closed, nullable, ref, request_schema
from entrypoints.http.webchat import BODY_BYTES, LONGEST_WAIT_S, SessionRequest, VisitorMessageRequest

WIDGET_ID = path_id("widget_id", "The web chat channel's id (`wc_…`), as in the widget's script tag.")
AFTER = query(
    "after",
    {"type": "integer", "minimum": 0},
    "The `cursor` of the last answer or event: only what is newer. Absent: the latest history.",
)
_CROSS_SITE = (
    " Cross-site: a page on a site the channel's `allowed_origins` lists (or any, when it is empty) gets "
    "`Access-Control-Allow-Origin`; a preflight (`OPTIONS`) is answered 204; another site gets 403 "
    "`origin_not_allowed`."
)
#: What the widget's endpoints can answer besides their own: an unknown widget, a refused site, a limit.
_WIDGET_ERRORS = (404, 403, 503)
_VISITOR_ERRORS = (401, *_WIDGET_ERRORS)

SCHEMAS: dict[str, JsonSchema] = {
    "VisitorSessionRequest": request_schema(
        SessionRequest, description="`token`: the browser's previous token, to be the same visitor again."
    ),
    "VisitorSession": closed(
        {
            "token": {"type": "string", "description": "Send as `Authorization: Bearer <token>`."},
            "visitor_id": {"type": "string", "maxLength": limits.CUSTOMER_ID},
            "expires_at": {"type": "string", "format": "date-time"},
            "widget": closed({"title": nullable({"type": "string"})}),
        }
    ),
    "VisitorMessageRequest": request_schema(
        VisitorMessageRequest,
        description=(
            f"`text`: at most {VISITOR_TEXT} characters. `client_message_id`: the browser's own id for this "
            "message (8 to 64 of `A-Za-z0-9_-`): sending it again is the same message."
        ),
    ),
    "VisitorMessage": closed(
        {
            "id": {"type": "string"},
            "cursor": {
                "type": "integer",
                "minimum": 0,
                "description": (
                    "In a history or a stream: where to read from next to miss nothing (the same for a batch). "
                    "In the answer to a POST: the message's own position, not a point to resume from."
                ),
            },
            "from": {"type": "string", "enum": ["visitor", "agent"]},
            "author": nullable({"type": "string", "enum": ["ai", "human"]}),
            "text": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        }
    ),
    "VisitorMessageAccepted": closed({"message": ref("VisitorMessage")}),
    "VisitorTimeline": closed(
        {"messages": {"type": "array", "items": ref("VisitorMessage")}, "cursor": {"type": "integer", "minimum": 0}}
    ),
}

PATHS: dict[str, JsonSchema] = {
    "/widget.js": {
        "get": operation(
            "widget_script",
            "The web chat widget's script",
            tag="webchat",
            responses={
                "200": {
                    **answer('Embed with `<script src=".../widget.js" data-widget-id="wc_…" async></script>`.'),
                    "content": {"text/javascript": {"schema": {"type": "string"}}},
                }
            },
            error_statuses=(),
            secured=False,
        )
    },
    "/webchat/{widget_id}/sessions": {
        "post": operation(
            "start_visitor_session",
            "Start a visitor session, or resume one",
            tag="webchat",
            parameters=[WIDGET_ID],
            body=ref("VisitorSessionRequest"),
            responses={
                "200": answer(
                    "The browser's previous token was valid: the same visitor, renewed.", ref("VisitorSession")
                ),
                "201": answer("A new visitor (no token, or an expired or foreign one).", ref("VisitorSession")),
            },
            error_statuses=(*_WIDGET_ERRORS, 400, 413, 422, 429),
            secured=False,
            description=(
                "A token proves one visitor of one widget for 30 days from its last visit; it cannot be made "
                "or altered by the browser. New visitors count against the widget's rate limit." + _CROSS_SITE
            ),
        )
    },
    "/webchat/{widget_id}/messages": {
        "get": operation(
            "read_visitor_messages",
            "The visitor's conversation (history, or long polling)",
            tag="webchat",
            parameters=[
                WIDGET_ID,
                AFTER,
                query(
                    "wait",
                    {"type": "integer", "minimum": 0, "maximum": LONGEST_WAIT_S, "default": 0},
                    "Seconds to wait for something newer than `after` before answering (long polling).",
                ),
            ],
            responses={
                "200": answer(
                    f"Oldest first, at most {HISTORY}. Messages after `cursor` may come again: show each id once.",
                    ref("VisitorTimeline"),
                )
            },
            error_statuses=(*_VISITOR_ERRORS, 422),
            secured=False,
            description="Needs `Authorization: Bearer <visitor token>`." + _CROSS_SITE,
        ),
        "post": operation(
            "send_visitor_message",
            "The visitor writes",
            tag="webchat",
            parameters=[WIDGET_ID],
            body=ref("VisitorMessageRequest"),
            responses={
                "202": answer(
                    "Stored; the agent answers it in order, like any customer's message.", ref("VisitorMessageAccepted")
                ),
                "200": answer(
                    "Sent before with this `client_message_id`: the same message.", ref("VisitorMessageAccepted")
                ),
            },
            error_statuses=(*_VISITOR_ERRORS, 400, 409, 413, 422, 429),
            secured=False,
            description=(
                f"Needs `Authorization: Bearer <visitor token>`. A body over {BODY_BYTES} bytes is 413; more than "
                "the visitor's or the widget's messages per minute is 429 with `Retry-After`; a widget with no "
                "agent linked is 409." + _CROSS_SITE
            ),
        ),
    },
    "/webchat/{widget_id}/events": {
        "get": operation(
            "visitor_events",
            "Live: the visitor's new messages and the agent typing (server-sent events)",
            tag="webchat",
            parameters=[WIDGET_ID, AFTER],
            responses={
                "200": {
                    **answer(
                        "`event: message` (`id:` the cursor, `data:` a VisitorMessage as JSON), `event: typing`, "
                        "`: keepalive` comments; the stream ends after `WEBCHAT_STREAM_SECONDS` and the client "
                        "reconnects with `after` = the last `id:`."
                    ),
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                }
            },
            error_statuses=(*_VISITOR_ERRORS, 422),
            secured=False,
            description="Needs `Authorization: Bearer <visitor token>`." + _CROSS_SITE,
        )
    },
}
