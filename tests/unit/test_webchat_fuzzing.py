"""Property-based tests of the web chat widget's public endpoints, on the in-memory app: any body (a valid one
mutated, any JSON, any bytes), any token, any origin, any cursor, on every widget route, is answered with a 2xx
or a 4xx in the one error shape — never a 5xx — and a visitor's next ordinary message is still taken."""

from __future__ import annotations

import copy
import functools
import uuid
from typing import Any

from attrs import frozen
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.support.fuzzing import _mutate_once, encode, json_bodies, odd_bodies, odd_text

SITE = "https://shop.example"


@frozen
class Widget:
    client: FlaskClient
    widget_id: str
    token: str


@functools.cache
def _widget() -> Widget:
    """One app for every example (the limits are raised so that the fuzzer is not only answered 429)."""
    env = {"WEBCHAT_VISITOR_PER_MINUTE": "100000", "WEBCHAT_WIDGET_PER_MINUTE": "100000", "WEBCHAT_STREAM_SECONDS": "1"}
    container = build_container(Settings.from_env(env, dev=True))
    client = create_app(container).test_client()
    admin = {"x-api-key": container.settings().admin_api_key}
    user = client.post("/users", json={"email": "fuzz@shop.example"}, headers=admin).get_json()
    headers = {"x-api-key": user["api_key"]}
    user_id = user["user"]["user_id"]
    channel = client.post(
        f"/users/{user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "shop.example", "allowed_origins": [SITE]},
        headers=headers,
    ).get_json()
    widget_id = channel["phone_number_id"]
    client.post(
        f"/users/{user_id}/agents",
        json={"name": "Site", "prompt_id": "pmpt_fuzz", "phone_number_id": widget_id},
        headers=headers,
    )
    token = client.post(f"/webchat/{widget_id}/sessions", json={}, headers={"Origin": SITE}).get_json()["token"]
    return Widget(client, widget_id, token)


_ROUTES: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("POST", "sessions", {"token": "previous"}),
    (
        "POST",
        "messages",
        {"text": "Do you ship to Spain?", "client_message_id": "c0ffee00-0000-4000-8000-0000000000aa"},
    ),
    ("GET", "messages", None),
    ("GET", "events", None),
    ("OPTIONS", "messages", None),
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str], dict[str, str]]:
    method, route, body = draw(st.sampled_from(_ROUTES))
    raw = None
    if body is not None:
        tree = copy.deepcopy(body)
        for _ in range(draw(st.integers(0, 3))):
            draw(_mutate_once(tree))
        raw = draw(st.one_of(st.just(encode(tree)), json_bodies(), odd_bodies()))
    header_text = odd_text().filter(
        lambda text: all(ord(c) < 256 for c in text) and "\n" not in text and "\r" not in text
    )
    token = draw(st.one_of(st.just("valid"), st.just("valid"), header_text))
    origin = draw(st.one_of(st.just(SITE), st.none(), st.just("https://evil.example"), header_text))
    headers = {"Authorization": f"Bearer {token}"} if token != "" else {}
    if origin is not None:
        headers["Origin"] = origin
    # `wait` only 0 or unreadable: a valid long wait would only make the example slow.
    query = draw(
        st.dictionaries(
            st.sampled_from(["after", "wait"]),
            st.one_of(st.just("0"), st.just("5"), odd_text(), st.just("99999999999999999999")),
            max_size=2,
        )
    )
    if query.get("wait", "").isdigit() and query["wait"] != "0":
        query["wait"] = "x"
    return method, route, raw, headers, query


@given(request=_requests())
def test_any_request_to_the_widgets_endpoints_is_answered_without_a_5xx(
    request: tuple[str, str, bytes | None, dict[str, str], dict[str, str]],
) -> None:
    widget = _widget()
    method, route, raw, headers, query = request
    if headers.get("Authorization") == "Bearer valid":
        headers["Authorization"] = f"Bearer {widget.token}"
    if method == "POST" and raw is not None and route == "sessions":
        raw = raw.replace(b'"previous"', f'"{widget.token}"'.encode())

    answer = widget.client.open(
        f"/webchat/{widget.widget_id}/{route}",
        method=method,
        data=raw,
        headers=headers,
        query_string={name: value.encode("utf-8", "surrogatepass") for name, value in query.items()},
    )

    assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, answer.get_data()[:500]
    if answer.status_code >= 400:
        body = answer.get_json()
        assert isinstance(body, dict) and set(body) == {"error"} and body["error"]["code"]

    ordinary = widget.client.post(
        f"/webchat/{widget.widget_id}/messages",
        json={"text": "still there?", "client_message_id": uuid.uuid4().hex},
        headers={"Authorization": f"Bearer {widget.token}", "Origin": SITE},
    )
    assert ordinary.status_code == 202, ordinary.get_data()
