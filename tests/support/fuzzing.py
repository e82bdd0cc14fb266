"""Hypothesis strategies for hostile input: any JSON, odd strings and bytes, mutations of the documented
Meta deliveries (`tests/unit/fixtures/whatsapp`, `tests/unit/fixtures/instagram`), and requests to every
route of the management API.

A mutation starts from a documented delivery (or a valid request body) and drops, retypes or duplicates
fields, puts odd strings (NUL, lone surrogates, huge ones) into values and keys, adds unknown keys,
repeats a key with another value or buries a value under deep nesting. Bodies are serialised as Meta
does (non-ASCII escaped), so a lone surrogate travels as `\\ud800`, which is how it reaches a JSON
parser in real life.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from attrs import frozen
from hypothesis import strategies as st

FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures"

#: Strings that have broken services before: NUL and lone surrogates (PostgreSQL refuses both), huge ones
#: (bounds), and a few that look like something else.
ODD_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udc00",
    "\udfff\ud800",
    "x\ud83d",
    "\ufeff",
    "\u2028",
    "\U0010ffff",
    "\\u0000",
    "' OR 1=1 --",
    "%s%n{0}",
    "null",
    "1e999",
    "9" * 40,
    "x" * 300,
    "x" * 5_000,
    "é" * 70_000,
    "\U0001f600" * 70_000,
    "a" * 300_000,
)

#: Bodies that are not JSON, or are JSON that parsers trip on (numbers beyond a double, nesting deeper
#: than a recursive parser goes, non-standard constants).
ODD_BODIES = (
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"NaN",
    b'{"object": "whatsapp_business_account", "entry": [NaN]}',
    b'{"object": "whatsapp_business_account", "entry": [Infinity, -Infinity]}',
    b'{"object": "whatsapp_business_account", "entry": [1e999, -1e999]}',
    b'{"object": "whatsapp_business_account", "entry": [' + b"1" * 5_000 + b"]}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 3_000 + b"]" * 3_000 + b"}",
    b"\xff\xfe\x00\x00",
    b'{"a": "\xed\xa0\x80"}',
    b'"\\ud800"',
    b'{"\\u0000": "\\u0000"}',
    '{"object": "instagram", "entry": []}'.encode("utf-16"),
    b'{"object": "whatsapp_business_account", "entry": [], "entry": 5}',
)


def _incompressible(seed: int) -> str:
    # Long and random: PostgreSQL compresses a repetitive value enough to fit in an index, not this one.
    return "".join(hashlib.sha256(f"{seed}:{n}".encode()).hexdigest() for n in range(160))


def odd_text() -> st.SearchStrategy[str]:
    """Any string, leaning on the ones that break storage."""
    # exclude_categories=() lets in the surrogates (Cs) that text() leaves out by default.
    every_character = st.characters(codec=None, exclude_categories=())
    return st.one_of(
        st.sampled_from(ODD_STRINGS),
        st.integers(0, 2**32).map(_incompressible),
        st.text(every_character, max_size=30),
        st.builds(
            lambda head, odd, tail: head + odd + tail,
            st.text(max_size=8),
            st.sampled_from(("\x00", "\ud800", "\udfff", "\x00\ud800")),
            st.text(max_size=8),
        ),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, its strings odd."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        odd_text(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(odd_text(), children, max_size=4)),
        max_leaves=max_leaves,
    )


def json_bodies() -> st.SearchStrategy[bytes]:
    """Any JSON value as a body."""
    return json_values().map(encode)


def odd_bodies() -> st.SearchStrategy[bytes]:
    """Any bytes, including the ones that are almost JSON."""
    return st.one_of(st.sampled_from(ODD_BODIES), st.binary(max_size=64))


def documented_deliveries() -> dict[str, Any]:
    """Every documented delivery, decoded, by `<platform>/<name>`."""
    return {
        f"{path.parent.name}/{path.stem}": json.loads(path.read_bytes()) for path in sorted(FIXTURES.glob("*/*.json"))
    }


_DOCUMENTED = documented_deliveries()


@frozen
class _RepeatedKeys:
    """An object whose keys may repeat (JSON allows it; Python's dicts cannot hold it)."""

    pairs: tuple[tuple[str, Any], ...]


@frozen
class _Nested:
    """`value` inside `depth` arrays."""

    value: Any
    depth: int


def encode(value: Any) -> bytes:
    """`value` as Meta serialises JSON (non-ASCII escaped), with repeated keys and deep nesting kept."""
    return _text(value).encode("ascii")


def _text(value: Any) -> str:
    # Recursion is bounded by the mutations: deep nesting is written out by _Nested, not built.
    if isinstance(value, _Nested):
        return "[" * value.depth + _text(value.value) + "]" * value.depth
    if isinstance(value, _RepeatedKeys):
        return "{" + ",".join(f"{json.dumps(key)}:{_text(item)}" for key, item in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(item) for item in value) + "]"
    return json.dumps(value)


#: The parts of a delivery that end up stored (a message, its raw JSON, its customer, its channel, a status):
#: half of the mutations aim there, so that a modest number of examples reaches the database with them.
_STORED_PARTS = frozenset({"messages", "contacts", "metadata", "statuses", "messaging", "standby", "message_echoes"})


def _slots(tree: Any) -> Iterator[tuple[Any, Any, bool]]:
    """(container, key, whether it is inside a part that is stored) of every value below the root."""
    stack: list[tuple[Any, bool]] = [(tree, False)]
    while stack:
        node, stored = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            inside = stored or key in _STORED_PARTS
            yield node, key, inside
            stack.append((child, inside))


@st.composite
def _mutate_once(draw: st.DrawFn, tree: Any) -> None:
    slots = list(_slots(tree))
    stored = [slot for slot in slots if slot[2]]
    if stored and draw(st.booleans()):
        slots = stored
    if not slots:
        return
    container, key, _ = draw(st.sampled_from(slots))
    value = container[key]
    mutation = draw(
        st.sampled_from(("drop", "retype", "odd_string", "odd_key", "duplicate_item", "unknown_key", "grow"))
    )
    if mutation == "drop":
        del container[key]
    elif mutation == "retype":
        container[key] = draw(json_values())
    elif mutation == "odd_string":
        odd = draw(odd_text())
        if isinstance(value, str):
            at = draw(st.integers(0, len(value)))
            container[key] = draw(st.sampled_from((odd, value[:at] + odd + value[at:])))
        else:
            container[key] = odd
    elif mutation == "odd_key" and isinstance(container, dict):
        container[draw(odd_text())] = container.pop(key)
    elif mutation == "duplicate_item" and isinstance(container, list):
        container.insert(key, copy.deepcopy(value))
    elif mutation == "unknown_key" and isinstance(value, dict):
        value[draw(odd_text())] = draw(json_values())
    elif mutation == "grow" and isinstance(value, list) and value:
        value.extend(copy.deepcopy(value[-1]) for _ in range(draw(st.integers(1, 30))))


@st.composite
def _wrap_once(draw: st.DrawFn, tree: Any) -> Any:
    """One structural oddity JSON allows but a Python value cannot hold: a repeated key, deep nesting."""
    slots = [(container, key) for container, key, _ in _slots(tree)]
    if not slots:
        return tree
    container, key = draw(st.sampled_from(slots))
    if draw(st.booleans()) and isinstance(container[key], dict) and container[key]:
        value = container[key]
        repeated = draw(st.sampled_from(sorted(value)))
        pairs = [*value.items(), (repeated, draw(json_values()))]
        if draw(st.booleans()):
            pairs.reverse()
        container[key] = _RepeatedKeys(tuple(pairs))
    else:
        container[key] = _Nested(container[key], draw(st.sampled_from((2, 40, 200, 950, 990, 2_000))))
    return tree


@st.composite
def mutated_deliveries(draw: st.DrawFn, platform: str | None = None) -> bytes:
    """A documented delivery (of `platform`, or any), mutated one to four times, as a body."""
    names = sorted(name for name in _DOCUMENTED if platform is None or name.startswith(f"{platform}/"))
    tree = copy.deepcopy(_DOCUMENTED[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(1, 4))):
        draw(_mutate_once(tree))
    if draw(st.integers(0, 4)) == 0:
        tree = draw(_wrap_once(tree))
    return encode(tree)


#: Meta's deliveries are at most 3 MB (whatsappapi.md, §1.4); the app refuses larger bodies with a 413.
META_MAX_DELIVERY_BYTES = 3 * 1024 * 1024


def any_delivery_body() -> st.SearchStrategy[bytes]:
    """What the webhook may be sent, signed: mutated documented deliveries most, any JSON, any bytes;
    no larger than Meta sends."""
    bodies = st.one_of(mutated_deliveries(), mutated_deliveries(), json_bodies(), odd_bodies())
    return bodies.filter(lambda raw: len(raw) <= META_MAX_DELIVERY_BYTES)


# --- the management API --------------------------------------------------------------------------

#: Every route of the management API: method, path ("{user}": a user id), a valid body, whether the
#: admin key is the one that may call it.
API_ROUTES: tuple[tuple[str, str, dict[str, Any] | None, bool], ...] = (
    ("POST", "/users", {"email": "fuzz@example.com", "company_name": "Fuzz"}, True),
    ("GET", "/users/{user}", None, False),
    ("GET", "/users/{user}/phone_numbers", None, False),
    (
        "POST",
        "/users/{user}/phone_numbers",
        {
            "type": "whatsapp",
            "phone_number_id": "106540352242001",
            "external_number": "+1 555 0100",
            "access_token": "EAAG-token-0123456789",
            "display_name": "Shop",
        },
        False,
    ),
    ("GET", "/users/{user}/agents", None, False),
    (
        "POST",
        "/users/{user}/agents",
        {
            "name": "Sales",
            "prompt_id": "pmpt_fuzz",
            "phone_number_id": "106540352242001",
            "prompt_version": "2",
            "extraction_prompt_id": "pmpt_leads",
        },
        False,
    ),
    ("GET", "/users/{user}/credits", None, False),
    ("POST", "/users/{user}/credits", {"amount": 5, "reason": "invoice 1"}, True),
    ("GET", "/users/{user}/messages", None, False),
    ("POST", "/users/{user}/messages/1/retry", None, False),
    ("GET", "/users/{user}/conversations", None, False),
    ("GET", "/users/{user}/conversations/1", None, False),
    ("GET", "/users/{user}/credits/ledger", None, False),
    ("GET", "/users/{user}/agents/agt_fuzz", None, False),
    (
        "PATCH",
        "/users/{user}/agents/agt_fuzz",
        {
            "name": "Support",
            "prompt_id": "pmpt_fuzz",
            "prompt_version": None,
            "phone_number_id": "106540352242001",
            "extraction_prompt_id": None,
        },
        False,
    ),
    ("DELETE", "/users/{user}/agents/agt_fuzz", None, False),
    (
        "PATCH",
        "/users/{user}/phone_numbers/106540352242999",
        {"display_name": "Shop", "access_token": "EAAG-token-9876543210", "bot": "paused"},
        False,
    ),
    ("DELETE", "/users/{user}/phone_numbers/106540352242999", None, False),
    ("PATCH", "/users/{user}/conversations/1", {"bot": "paused", "resume_after_minutes": 30}, False),
    ("POST", "/users/{user}/conversations/1/messages", {"text": "Hello, this is Ana.", "pause": True}, False),
    ("GET", "/users/{user}/extractions", None, False),
    ("GET", "/users/{user}/conversations/1/extractions", None, False),
    ("GET", "/users/{user}/notifications", None, False),
    ("GET", "/users/{user}/notifications/unread-count", None, False),
    ("POST", "/users/{user}/notifications/read-all", None, False),
    ("GET", "/users/{user}/notifications/1", None, False),
    ("PATCH", "/users/{user}/notifications/1", {"read": True}, False),
    ("GET", "/users/{user}/notification-settings", None, False),
    (
        "PATCH",
        "/users/{user}/notification-settings",
        {"hot_lead": {"urgency": 3, "engagement": None}, "credits_low_at": 20},
        False,
    ),
    ("PUT", "/users/{user}/webhook", {"url": "https://crm.example.com/hooks/mcagent"}, False),
    ("GET", "/users/{user}/webhook", None, False),
    ("POST", "/users/{user}/webhook/rotate-secret", None, False),
    ("GET", "/users/{user}/webhook/deliveries", None, False),
    ("DELETE", "/users/{user}/webhook", None, False),
)

#: The messages listing's parameters, each with a value that reads.
MESSAGE_PARAMETERS = {
    "phone_number_id": "106540352242922",
    "conversation_id": "1",
    "customer": "16505551234",
    "status": "received",
    "direction": "outbound",
    "since": "2025-01-01T00:00:00Z",
    "until": "2030-01-01T00:00:00+02:00",
    "order": "sequence",
    "cursor": "10",
    "limit": "5",
}

#: The conversations listing's parameters, each with a value that reads.
CONVERSATION_PARAMETERS = {
    "phone_number_id": "106540352242922",
    "customer_id": "16505551234",
    "state": "archived",
    "cursor": "1767341703000000.17",
    "limit": "5",
}

#: The ledger pages' parameters, each with a value that reads.
LEDGER_PARAMETERS = {"cursor": "10", "limit": "5"}

#: The leads listing's parameters (the history of one conversation reads the cursor and limit only).
EXTRACTION_PARAMETERS = {
    "channel": "whatsapp",
    "phone_number_id": "106540352242922",
    "min_urgency": "3",
    "min_budget": "2",
    "min_fit": "1",
    "min_engagement": "2",
    "has_demo": "true",
    "since": "2025-01-01T00:00:00Z",
    "until": "2030-01-01T00:00:00+02:00",
    "cursor": "10",
    "limit": "5",
}

#: The notifications listing's parameters.
NOTIFICATION_PARAMETERS = {
    "kind": "hot_lead",
    "read": "false",
    "conversation_id": "1",
    "since": "2025-01-01T00:00:00Z",
    "until": "2030-01-01T00:00:00+02:00",
    "cursor": "u10",
    "limit": "5",
}

#: The webhook delivery log's parameters.
DELIVERY_PARAMETERS = {"status": "given_up", "notification_id": "1", "cursor": "10", "limit": "5"}

_PARAMETERS_OF = {
    "/messages": MESSAGE_PARAMETERS,
    "/conversations": CONVERSATION_PARAMETERS,
    "/credits/ledger": LEDGER_PARAMETERS,
    "/extractions": EXTRACTION_PARAMETERS,
    "/notifications": NOTIFICATION_PARAMETERS,
    "/webhook/deliveries": DELIVERY_PARAMETERS,
}

_ODD_PARAMETER_VALUES = (
    "0",
    "-1",
    "+5",
    " 5",
    "²",
    "9" * 19,
    "9" * 19 + ".9",
    "1.1",
    "99999999999999999",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2026-02-30T00:00:00Z",
    "newest",
)


@frozen
class ApiRequest:
    """One request to the management API. `user` None means the caller's own id; `admin` says which key."""

    method: str
    path: str
    user: str | None
    body: bytes | None
    query: dict[str, str]
    idempotency_key: str | None
    admin: bool

    def url(self, own_user_id: str) -> str:
        user = own_user_id if self.user is None else self.user
        path = self.path.format(user=quote(user.encode("utf-8", "surrogatepass"), safe=""))
        query = urlencode({name: value.encode("utf-8", "surrogatepass") for name, value in self.query.items()})
        return f"{path}?{query}" if query else path


def _header_value(text: str) -> bool:
    # What an HTTP client can put in a header at all: Latin-1, one line.
    return all(ord(character) < 256 for character in text) and "\n" not in text and "\r" not in text


@st.composite
def api_requests(draw: st.DrawFn) -> ApiRequest:
    """Any request to any route: a valid body mutated, any JSON or any bytes; odd parameters, ids, keys."""
    method, path, body, admin = draw(st.sampled_from(API_ROUTES))
    raw: bytes | None = None
    if body is not None:
        tree = copy.deepcopy(body)
        for _ in range(draw(st.integers(0, 3))):
            draw(_mutate_once(tree))
        raw = draw(st.one_of(st.just(encode(tree)), json_bodies(), odd_bodies()))
    query: dict[str, str] = {}
    parameters = next((known for suffix, known in _PARAMETERS_OF.items() if path.endswith(suffix)), None)
    if parameters is not None:
        names = draw(st.lists(st.sampled_from(sorted(parameters)), unique=True, max_size=5))
        odd_value = st.one_of(odd_text(), st.sampled_from(_ODD_PARAMETER_VALUES))
        query = {name: draw(st.one_of(st.just(parameters[name]), odd_value)) for name in names}
    return ApiRequest(
        method=method,
        path=path,
        user=draw(st.one_of(st.none(), st.none(), odd_text())),
        body=raw,
        query=query,
        idempotency_key=draw(st.one_of(st.none(), odd_text().filter(_header_value))),
        admin=draw(st.one_of(st.just(admin), st.booleans())),
    )
