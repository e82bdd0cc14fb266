"""Property-based tests of the relink routes on the in-memory app: any PATCH body (a valid one mutated,
any JSON, any bytes) and any agent or channel id, with either key, is answered with a 2xx or a 4xx,
never a 5xx; errors in the one error shape; a 204 without a body."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.fuzzing import ApiRequest, _mutate_once, encode, json_bodies, odd_bodies, odd_text
from tests.support.inprocess import WHATSAPP_NUMBERS, InProcessService

#: "{agent}": the tenant's agent on the first number; "{channel}": that number. Odd ids replace them.
RELINK_ROUTES: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "/users/{user}/agents/{agent}", None),
    ("PATCH", "/users/{user}/agents/{agent}", {"name": "B", "prompt_id": "pmpt_b", "prompt_version": None}),
    ("PATCH", "/users/{user}/agents/{agent}", {"phone_number_id": WHATSAPP_NUMBERS[1]}),
    ("PATCH", "/users/{user}/agents/{agent}", {"phone_number_id": None}),
    ("DELETE", "/users/{user}/agents/{agent}", None),
    ("DELETE", "/users/{user}/phone_numbers/{channel}", None),
)


@st.composite
def relink_requests(draw: st.DrawFn) -> tuple[ApiRequest, bool, bool]:
    method, path, body = draw(st.sampled_from(RELINK_ROUTES))
    raw: bytes | None = None
    if body is not None:
        tree = copy.deepcopy(body)
        for _ in range(draw(st.integers(0, 3))):
            draw(_mutate_once(tree))
        raw = draw(st.one_of(st.just(encode(tree)), json_bodies(), odd_bodies()))
    request = ApiRequest(
        method=method,
        path=path,
        user=draw(st.one_of(st.none(), st.none(), odd_text())),
        body=raw,
        query={},
        idempotency_key=None,
        admin=draw(st.booleans()),
    )
    return request, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=80, deadline=None)
@given(drawn=relink_requests(), odd_id=odd_text())
def test_any_request_to_the_relink_routes_is_answered_without_a_5xx(
    drawn: tuple[ApiRequest, bool, bool], odd_id: str
) -> None:
    request, real_agent, real_channel = drawn
    service = InProcessService(build_container(Settings.from_env({}, dev=True)))
    agents = service.container.tenant_queries().agents(service.user_id)
    [agent] = [a for a in agents if a.phone_number_id == WHATSAPP_NUMBERS[0]]
    agent_id = agent.agent_id if real_agent else odd_id
    channel = WHATSAPP_NUMBERS[0] if real_channel else odd_id
    path = request.path.replace("{agent}", _escaped(agent_id)).replace("{channel}", _escaped(channel))

    answer = service.call(evolve(request, path=path))

    assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, answer.get_data()[:500]
    if answer.status_code == 204:
        assert answer.get_data() == b""
        return
    body = answer.get_json()
    assert isinstance(body, dict)
    if answer.status_code >= 400:
        assert set(body) == {"error"} and body["error"]["code"]


def _escaped(value: str) -> str:
    # `ApiRequest.url` formats `{user}` only: braces in an odd id must not read as another field.
    return quote(value.encode("utf-8", "surrogatepass"), safe="").replace("{", "{{").replace("}", "}}")
