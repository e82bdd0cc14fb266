"""Property-based tests of the management API, on the in-memory app: any body (a valid one mutated, any
JSON, any bytes), any query parameter, any path id and any Idempotency-Key, on every route, with
either key, is answered with a 2xx or a 4xx (never a 5xx, nor a redirect), in JSON (a 204 with no body),
errors in the one error shape.

The same against PostgreSQL, which refuses more, is in tests/integration/test_fuzzing_postgres.py.
"""

from __future__ import annotations

from hypothesis import given

from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.fuzzing import ApiRequest, api_requests
from tests.support.inprocess import InProcessService


@given(request=api_requests())
def test_any_request_to_any_route_is_answered_without_a_5xx(request: ApiRequest) -> None:
    service = InProcessService(build_container(Settings.from_env({}, dev=True)))

    answer = service.call(request)

    assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, answer.get_data()[:500]
    if answer.status_code == 204:
        assert answer.get_data() == b""
        return
    body = answer.get_json()
    assert isinstance(body, dict)
    if answer.status_code >= 400:
        assert set(body) == {"error"} and body["error"]["code"]
