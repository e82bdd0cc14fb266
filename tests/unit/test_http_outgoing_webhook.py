"""The outgoing webhook through the REST API (embedded container): PUT creates it with its secret shown once,
a new URL keeps the secret and shows none, rotation shows the new one once, GET never shows it; DELETE; the
delivery log with its attempts, filters and cursor. Each answer is checked against the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.memory.unit_of_work import InMemoryUnitOfWork
from domain.webhooks import SECRET_PREFIX, WebhookAttempt, WebhookDelivery, sign, signature_matches
from tests.unit.test_http_api import Api, Tenant, _error, _json

URL = "https://crm.shop.example/hooks/mcagent"
WEBHOOK_KEYS = {"user_id", "url", "created_at", "secret_rotated_at"}


def _put(api: Api, tenant: Tenant, body: object) -> Any:
    return api.client.put(f"/users/{tenant.user_id}/webhook", json=body, headers=tenant.headers)


def _call(api: Api, tenant: Tenant, method: str, path: str = "", **params: object) -> Any:
    return api.client.open(
        f"/users/{tenant.user_id}/webhook{path}", method=method, query_string=params, headers=tenant.headers
    )


def _stored_secret(api: Api, tenant: Tenant) -> str:
    endpoint = api.container.memory_store().tables.webhook_endpoints[tenant.user_id]
    return endpoint.secret


# --- the secret, shown once ------------------------------------------------------------------------


def test_creating_the_webhook_answers_201_with_the_secret_it_signs_with(api: Api, tenant: Tenant) -> None:
    created = _put(api, tenant, {"url": URL})

    assert created.status_code == 201
    body = _json(created)
    assert set(body) == {*WEBHOOK_KEYS, "secret"}
    assert body["url"] == URL and body["user_id"] == tenant.user_id
    assert body["secret"].startswith(SECRET_PREFIX) and len(body["secret"]) > 40
    assert body["created_at"] == body["secret_rotated_at"] == api.clock.now().isoformat()
    payload = b'{"event_id":"evt_1"}'
    assert signature_matches(body["secret"], payload, sign(_stored_secret(api, tenant), payload))


def test_the_secret_is_never_shown_again(api: Api, tenant: Tenant) -> None:
    secret = _json(_put(api, tenant, {"url": URL}))["secret"]

    shown = _call(api, tenant, "GET")
    moved = _put(api, tenant, {"url": "https://crm.shop.example/v2"})
    same = _put(api, tenant, {"url": "https://crm.shop.example/v2"})
    deliveries = _call(api, tenant, "GET", "/deliveries")

    assert shown.status_code == 200 and set(_json(shown)) == WEBHOOK_KEYS
    assert moved.status_code == 200 and set(_json(moved)) == WEBHOOK_KEYS
    assert _json(moved)["url"] == "https://crm.shop.example/v2"
    assert same.status_code == 200 and _json(same) == _json(moved)
    for answer in (shown, moved, same, deliveries):
        assert secret not in answer.get_data(as_text=True)
    assert _stored_secret(api, tenant) == secret


def test_rotation_shows_the_new_secret_once_and_the_old_one_stops_signing(api: Api, tenant: Tenant) -> None:
    old = _json(_put(api, tenant, {"url": URL}))["secret"]
    api.clock.advance(hours=1)

    rotated = _call(api, tenant, "POST", "/rotate-secret")

    assert rotated.status_code == 200
    body = _json(rotated)
    assert set(body) == {*WEBHOOK_KEYS, "secret"}
    assert body["secret"].startswith(SECRET_PREFIX) and body["secret"] != old
    assert body["secret_rotated_at"] == api.clock.now().isoformat() != body["created_at"]
    assert _stored_secret(api, tenant) == body["secret"]
    assert body["secret"] not in _call(api, tenant, "GET").get_data(as_text=True)


def test_deleting_the_webhook_is_204_then_it_is_not_found(api: Api, tenant: Tenant) -> None:
    first = _json(_put(api, tenant, {"url": URL}))["secret"]

    deleted = _call(api, tenant, "DELETE")

    assert deleted.status_code == 204 and deleted.get_data() == b""
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-secret")):
        _error(_call(api, tenant, method, path), 404, "not_found")
    again = _put(api, tenant, {"url": URL})
    assert again.status_code == 201 and _json(again)["secret"] != first


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": None}, "url"),
        ({"url": 42}, "url"),
        ({"url": ""}, "url"),
        ({"url": "crm.shop.example/hooks"}, "url"),
        ({"url": "ftp://crm.shop.example/hooks"}, "url"),
        ({"url": "https://me:pw@crm.shop.example/hooks"}, "url"),
        ({"url": "https://crm.shop.example/hooks#top"}, "url"),
        ({"url": "https://crm.shop.example/" + "x" * 2_048}, "url"),
        ({"url": "https://crm.shop.example/\x00"}, "url"),
        ({"url": "http://["}, "url"),
        ({"url": "https://[zz]/"}, "url"),
        ({"url": "https://x:99999/"}, "url"),
    ],
)
def test_a_bad_url_is_422_naming_it_and_nothing_is_configured(
    api: Api, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    _error(_put(api, tenant, body), 422, "validation_failed", field=field)

    _error(_call(api, tenant, "GET"), 404, "not_found")


def test_a_bad_url_leaves_a_configured_webhook_as_it_was(api: Api, tenant: Tenant) -> None:
    created = _json(_put(api, tenant, {"url": URL}))

    _error(_put(api, tenant, {"url": "mailto:ops@shop.example"}), 422, "validation_failed", field="url")

    assert _json(_call(api, tenant, "GET"))["url"] == URL
    assert _stored_secret(api, tenant) == created["secret"]


def test_a_put_without_a_json_body_is_400(api: Api, tenant: Tenant) -> None:
    response = api.client.put(f"/users/{tenant.user_id}/webhook", data="https://x", headers=tenant.headers)

    _error(response, 400, "malformed_json")


# --- the delivery log ------------------------------------------------------------------------------


@pytest.fixture
def log(api: Api, tenant: Tenant, other: Tenant) -> dict[str, int]:
    """Three deliveries of `tenant` (one delivered after a failure, one pending, one given up) and one of
    `other`'s; delivery ids by name."""
    _put(api, tenant, {"url": URL})
    now = api.clock.now()
    ids: dict[str, int] = {}
    with InMemoryUnitOfWork(api.container.memory_store()) as uow:
        for name, user_id, notification_id in (
            ("delivered", tenant.user_id, 1),
            ("pending", tenant.user_id, 2),
            ("given_up", tenant.user_id, 3),
            ("theirs", other.user_id, 4),
        ):
            delivery = uow.webhooks.add_delivery(
                WebhookDelivery.first(user_id, notification_id, f"evt_{name}", URL, now)
            )
            assert delivery.delivery_id is not None
            ids[name] = delivery.delivery_id
            failed = WebhookAttempt(1, now, 503, "HTTP 503: busy", 120)
            delivery = delivery.answered(failed, accepted=False)
            uow.webhooks.save_attempt(delivery, failed)
            if name == "delivered":
                ok = WebhookAttempt(2, now + timedelta(seconds=30), 200, None, 15)
                uow.webhooks.save_attempt(delivery.answered(ok, accepted=True), ok)
            if name == "given_up":
                late = WebhookAttempt(2, now + timedelta(hours=24), None, "timed out after 5000 ms", 5000)
                uow.webhooks.save_attempt(delivery.answered(late, accepted=False), late)
        uow.commit()
    return ids


def _deliveries(api: Api, tenant: Tenant, **params: object) -> dict[str, Any]:
    response = _call(api, tenant, "GET", "/deliveries", **params)
    assert response.status_code == 200, response.json
    return _json(response)


def _event_ids(page: dict[str, Any]) -> list[str]:
    return [delivery["event_id"] for delivery in page["deliveries"]]


def test_the_log_shows_each_delivery_newest_first_with_its_attempts(
    api: Api, tenant: Tenant, log: dict[str, int]
) -> None:
    page = _deliveries(api, tenant)

    assert _event_ids(page) == ["evt_given_up", "evt_pending", "evt_delivered"]
    assert page["next_cursor"] is None
    delivered = page["deliveries"][2]
    assert delivered["status"] == "delivered"
    assert delivered["delivery_id"] == log["delivered"] and delivered["notification_id"] == 1
    assert delivered["attempts"] == [
        {
            "attempt_no": 1,
            "at": "2026-01-01T12:00:00+00:00",
            "status_code": 503,
            "error": "HTTP 503: busy",
            "duration_ms": 120,
        },
        {"attempt_no": 2, "at": "2026-01-01T12:00:30+00:00", "status_code": 200, "error": None, "duration_ms": 15},
    ]
    assert delivered["delivered_at"] == "2026-01-01T12:00:30+00:00" and delivered["next_attempt_at"] is None
    pending = page["deliveries"][1]
    assert (pending["status"], pending["next_attempt_at"]) == ("pending", "2026-01-01T12:00:30+00:00")
    assert (pending["last_status_code"], pending["last_error"]) == (503, "HTTP 503: busy")
    given_up = page["deliveries"][0]
    assert (given_up["status"], given_up["last_status_code"]) == ("given_up", None)
    assert given_up["last_error"] == "timed out after 5000 ms"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, ["evt_pending"]),
        ({"status": "given_up"}, ["evt_given_up"]),
        ({"notification_id": "1"}, ["evt_delivered"]),
        ({"notification_id": "4"}, []),
        ({"status": "delivered", "notification_id": "2"}, []),
    ],
)
def test_the_log_filters(
    api: Api, tenant: Tenant, log: dict[str, int], params: dict[str, str], expected: list[str]
) -> None:
    assert _event_ids(_deliveries(api, tenant, **params)) == expected


def test_the_log_pages_with_its_cursor(api: Api, tenant: Tenant, log: dict[str, int]) -> None:
    first = _deliveries(api, tenant, limit=2)
    second = _deliveries(api, tenant, limit=2, cursor=first["next_cursor"])

    assert _event_ids(first) == ["evt_given_up", "evt_pending"] and first["next_cursor"] == log["pending"]
    assert _event_ids(second) == ["evt_delivered"] and second["next_cursor"] is None


def test_the_log_stays_after_the_webhook_is_deleted(api: Api, tenant: Tenant, log: dict[str, int]) -> None:
    _call(api, tenant, "DELETE")

    assert len(_deliveries(api, tenant)["deliveries"]) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "failed"}, "status"),
        ({"notification_id": "0"}, "notification_id"),
        ({"notification_id": "one"}, "notification_id"),
        ({"cursor": "u1"}, "cursor"),
        ({"limit": "1000"}, "limit"),
    ],
)
def test_a_bad_log_parameter_is_422_naming_it(api: Api, tenant: Tenant, params: dict[str, str], field: str) -> None:
    _error(_call(api, tenant, "GET", "/deliveries", **params), 422, "validation_failed", field=field)


# --- who may call them -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("GET", "/deliveries")],
)
def test_every_route_needs_the_tenants_key(api: Api, tenant: Tenant, other: Tenant, method: str, path: str) -> None:
    _put(api, tenant, {"url": URL})
    url = f"/users/{tenant.user_id}/webhook{path}"

    _error(api.client.open(url, method=method, json={"url": URL}), 401, "unauthorized")
    _error(api.client.open(url, method=method, json={"url": URL}, headers=other.headers), 404, "not_found")
    nobody = f"/users/usr_nobody/webhook{path}"
    _error(api.client.open(nobody, method=method, json={"url": URL}, headers=api.admin), 404, "not_found")
    assert _json(_call(api, tenant, "GET"))["url"] == URL


def test_the_admin_configures_a_tenants_webhook(api: Api, tenant: Tenant) -> None:
    created = api.client.put(f"/users/{tenant.user_id}/webhook", json={"url": URL}, headers=api.admin)

    assert created.status_code == 201
    assert _json(_call(api, tenant, "GET"))["url"] == URL
