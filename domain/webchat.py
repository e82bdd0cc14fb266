"""The web chat widget's rules: which sites may embed it, how long a visitor stays known, what a visitor
may send, and what of the conversation the visitor sees.

A web chat channel is a widget (`wc_…`) that a business puts on its site with one script tag. Each browser
that opens it is a *visitor* (`vis_…`): the customer of the channel's conversations, known by a session
token that only that browser holds. A visitor sees its own conversation and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from attrs import evolve, frozen

from domain import limits
from domain.errors import ValidationFailed
from domain.messages import Direction, InboundMessage, Message, MessageStatus, Sender

#: How long a visitor stays known without coming back; every visit renews it.
SESSION_LIFETIME = timedelta(days=30)
#: A visitor's message, in characters: a long question fits, a pasted document does not.
VISITOR_TEXT = 2_000
#: Origins a widget may be limited to.
ALLOWED_ORIGINS = 20
#: The most of a visitor's history one answer carries (the latest ones).
HISTORY = 200

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


# --- which sites may embed the widget ------------------------------------------------------------


def check_origins(origins: Iterable[object]) -> tuple[str, ...]:
    """A widget's allow-list as stored: each entry `scheme://host[:port]` (`https://*.shop.example` for every
    subdomain), lower case, no path, no duplicates. An empty list lets any site embed the widget."""
    checked: list[str] = []
    for position, origin in enumerate(origins):
        if not isinstance(origin, str):
            raise ValidationFailed("allowed_origins must be a list of origins (text)", field="allowed_origins")
        normal = _normal_origin(origin)
        if normal is None:
            raise ValidationFailed(
                f"allowed_origins[{position}] must be an origin such as https://shop.example "
                f"or https://*.shop.example (scheme, host and optional port; no path), got {origin[:100]!r}",
                field="allowed_origins",
            )
        if normal not in checked:
            checked.append(normal)
    if len(checked) > ALLOWED_ORIGINS:
        raise ValidationFailed(f"allowed_origins holds at most {ALLOWED_ORIGINS} origins", field="allowed_origins")
    return tuple(checked)


def _normal_origin(origin: str) -> str | None:
    origin = origin.strip().lower()
    if len(origin) > 255 or not origin.isascii():
        return None
    try:
        parts = urlsplit(origin.replace("://*.", "://wildcard-marker."))
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").replace("wildcard-marker.", "*.", 1)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username or parts.password or not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def origin_allowed(allowed: Sequence[str], origin: str | None) -> bool:
    """Whether a browser on `origin` may use the widget. Without an `Origin` (not a browser's cross-site call:
    a server, curl) the allow-list has nothing to check — it keeps other *sites* out, it is not a password."""
    if not allowed or origin is None:
        return True
    normal = _normal_origin(origin)
    if normal is None:
        return False
    scheme, _, host_port = normal.partition("://")
    for entry in allowed:
        entry_scheme, _, entry_host_port = entry.partition("://")
        if entry_scheme != scheme:
            continue
        if entry_host_port == host_port:
            return True
        if entry_host_port.startswith("*.") and host_port.endswith(entry_host_port[1:]):
            return True
    return False


# --- a visitor -------------------------------------------------------------------------------------


@frozen
class VisitorSession:
    """A browser known to one widget until `expires_at`. Its token (issued by an adapter) carries exactly this."""

    widget_id: str
    visitor_id: str
    expires_at: datetime

    @staticmethod
    def start(widget_id: str, visitor_id: str, now: datetime) -> VisitorSession:
        return VisitorSession(widget_id=widget_id, visitor_id=visitor_id, expires_at=now + SESSION_LIFETIME)

    def valid_for(self, widget_id: str, now: datetime) -> bool:
        """A token of another widget, or an expired one, names no visitor here."""
        return self.widget_id == widget_id and now < self.expires_at

    def renewed(self, now: datetime) -> VisitorSession:
        """The visitor came back: known for another full lifetime."""
        return evolve(self, expires_at=now + SESSION_LIFETIME)


def check_visitor_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationFailed("text must be a string", field="text")
    text = text.strip()
    if not text:
        raise ValidationFailed("text must not be empty", field="text")
    if len(text) > VISITOR_TEXT:
        raise ValidationFailed(f"text must be at most {VISITOR_TEXT} characters, got {len(text)}", field="text")
    if not limits.is_storable(text):
        raise ValidationFailed("text must not contain NUL characters or lone surrogates", field="text")
    return text


_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def visitor_message(session: VisitorSession, text: str, client_message_id: object, now: datetime) -> InboundMessage:
    """A visitor's message as the pipeline takes any customer's. The browser names each message once
    (`client_message_id`); sending it again (a retry after a lost answer) is the same message."""
    if not isinstance(client_message_id, str) or not _CLIENT_ID.match(client_message_id):
        raise ValidationFailed(
            "client_message_id must be 8 to 64 letters, digits, '-' or '_' (a UUID, say)", field="client_message_id"
        )
    return InboundMessage(
        phone_number_id=session.widget_id,
        platform_message_id=visitor_platform_id(session, client_message_id),
        customer_id=session.visitor_id,
        customer_name=None,
        content_type="text",
        text=text,
        skip_reason=None,
        sent_at=now,
        raw={"client_message_id": client_message_id},
    )


def visitor_platform_id(session: VisitorSession, client_message_id: str) -> str:
    """Unique per widget (what dedup is keyed on) and bound to the visitor: one visitor's ids never meet another's."""
    return f"{session.visitor_id}.{client_message_id}"


def visitor_of(platform_message_id: str) -> str:
    """The visitor who sent the message `visitor_platform_id` named."""
    return platform_message_id.partition(".")[0]


# --- what the visitor sees ------------------------------------------------------------------------

#: Replies the visitor sees: being handed to the widget or handed already. A failed part is never shown.
_SHOWN_REPLY = frozenset(
    (MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED)
)


def shown_to_visitor(message: Message) -> bool:
    """The visitor's own messages, and the replies (the AI's and the team's) that went out to the widget."""
    if message.direction is Direction.INBOUND:
        return message.sender is Sender.CUSTOMER and message.content_type == "text"
    return message.status in _SHOWN_REPLY


@frozen
class Timeline:
    """What the visitor is shown of its messages after `cursor`, and the cursor to ask from next.

    Messages are numbered in the order they were stored (`message_id`), but a reply stored early can be shown
    late (it waits, `pending`, for the parts before it). So the next cursor stops short of the first reply not
    yet settled: everything after it is asked for again, and the widget, which knows what it has shown by id,
    shows only what is new. Nothing is ever skipped.
    """

    shown: tuple[Message, ...]
    cursor: int

    @staticmethod
    def after(cursor: int, messages: Sequence[Message]) -> Timeline:
        """`messages`: the visitor's messages with `message_id > cursor`, oldest first."""
        shown = tuple(message for message in messages if shown_to_visitor(message))
        next_cursor = cursor
        for message in messages:
            if message.direction is Direction.OUTBOUND and message.status is MessageStatus.PENDING:
                break
            next_cursor = message.message_id
        return Timeline(shown=shown, cursor=next_cursor)
