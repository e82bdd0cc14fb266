"""The webhook and API fuzzers of tests/unit, against PostgreSQL and Redis: NUL, lone surrogates, values
too large for an index and numbers jsonb refuses only fail on the real database.

The app and the worker run in this process on a container wired to PostgreSQL and Redis (jobs to an
in-process queue that the test works off, replies recorded), with one tenant for every example, so
that what one example stored is there for the next: the property is about a service that has seen
all of it, not a fresh one each time.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given

from domain.messages import MessageStatus
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.fuzzing import ApiRequest, any_delivery_body, api_requests
from tests.support.inprocess import InProcessService
from tests.support.secrets import TEST_TOKEN_KEY


@pytest.fixture
def service(clean_database: str, redis_url: str) -> Iterator[InProcessService]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": clean_database,
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": "fuzz-webhook-secret",
            "WEBHOOK_VERIFY_TOKEN": "fuzz-verify-token",
            "ADMIN_API_KEY": "fuzz-admin-key",
            "OFFLINE_RESPONDER": "true",
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        }
    )
    container = build_container(settings)
    container.init_resources()
    yield InProcessService(container)
    container.shutdown_resources()


def _rejected(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM rejected_deliveries").fetchone()
    assert row is not None
    return int(row[0])


def test_any_signed_delivery_is_answered_200_or_400_and_the_next_message_is_still_answered(
    service: InProcessService, clean_database: str
) -> None:
    @given(raw=any_delivery_body())
    def deliver(raw: bytes) -> None:
        answer = service.deliver(raw)
        assert answer.status_code in (200, 400), answer.get_data()[:500]
        service.drain()  # an exception in a job fails here

        service.resume_bots()

        valid = service.deliver_valid_text()
        service.drain()
        assert service.message(valid).status is MessageStatus.ANSWERED

    deliver()
    assert _rejected(clean_database) > 0  # the examples reached the rejections, and PostgreSQL kept them


def test_any_request_to_any_route_is_answered_without_a_5xx(service: InProcessService) -> None:
    @given(request=api_requests())
    def call(request: ApiRequest) -> None:
        answer = service.call(request)
        assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, answer.get_data()[:500]

    call()
    assert service.call(ApiRequest("GET", "/users/{user}", None, None, {}, None, False)).status_code == 200
