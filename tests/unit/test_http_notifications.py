"""Notifications through the REST API (embedded container): the listing (unread first, filters, cursor), read
and unread marks, the unread count, read-all, and the settings; each answer checked against the OpenAPI
document by the test client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from adapters.memory.unit_of_work import InMemoryUnitOfWork
from domain.notifications import NewNotification, NotificationKind
from tests.unit.test_http_api import Api, Tenant, _error, _json

NOTIFICATION_KEYS = {
    "notification_id",
    "kind",
    "title",
    "conversation_id",
    "phone_number_id",
    "data",
    "read",
    "read_at",
    "created_at",
}


def tell(
    api: Api,
    tenant: Tenant,
    title: str,
    kind: NotificationKind = NotificationKind.HOT_LEAD,
    conversation_id: int | None = None,
) -> int:
    """What the service decided to tell the tenant, stored a minute after the previous one."""
    api.clock.advance(minutes=1)
    with InMemoryUnitOfWork(api.container.memory_store()) as uow:
        stored = uow.notifications.add(
            NewNotification(
                tenant.user_id,
                kind,
                title,
                f"{kind}:{title}",
                api.clock.now(),
                conversation_id,
                None if conversation_id is None else "pn_1",
                {"urgency": 3} if kind is NotificationKind.HOT_LEAD else {},
            )
        )
        uow.commit()
    assert stored is not None
    return stored.notification_id


def _get(api: Api, tenant: Tenant, path: str, **params: object) -> dict[str, Any]:
    response = api.client.get(f"/users/{tenant.user_id}{path}", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return _json(response)


def _mark(api: Api, tenant: Tenant, notification_id: int | str, body: object) -> Any:
    return api.client.patch(
        f"/users/{tenant.user_id}/notifications/{notification_id}", json=body, headers=tenant.headers
    )


def _titles(page: dict[str, Any]) -> list[str]:
    return [notification["title"] for notification in page["notifications"]]


@pytest.fixture
def told(api: Api, tenant: Tenant, other: Tenant) -> dict[str, int]:
    """Five notifications of `tenant` (two read), one of `other`; ids by title."""
    ids = {
        "hot": tell(api, tenant, "hot", conversation_id=7),
        "demo": tell(api, tenant, "demo", NotificationKind.DEMO_BOOKED, conversation_id=7),
        "low": tell(api, tenant, "low", NotificationKind.CREDITS_LOW),
        "waiting": tell(api, tenant, "waiting", NotificationKind.WAITING_FOR_HUMAN, conversation_id=8),
        "failing": tell(api, tenant, "failing", NotificationKind.CHANNEL_FAILING),
        "theirs": tell(api, other, "theirs"),
    }
    for title in ("demo", "failing"):
        assert _mark(api, tenant, ids[title], {"read": True}).status_code == 200
    return ids


# --- the listing -------------------------------------------------------------------------------------


def test_unread_come_first_then_read_each_newest_first(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    page = _get(api, tenant, "/notifications")

    assert _titles(page) == ["waiting", "low", "hot", "failing", "demo"]
    assert page["next_cursor"] is None
    hot = page["notifications"][2]
    assert set(hot) == NOTIFICATION_KEYS
    assert hot == {
        "notification_id": told["hot"],
        "kind": "hot_lead",
        "title": "hot",
        "conversation_id": 7,
        "phone_number_id": "pn_1",
        "data": {"urgency": 3},
        "read": False,
        "read_at": None,
        "created_at": "2026-01-01T12:01:00+00:00",
    }
    assert page["notifications"][3]["read"] is True
    assert datetime.fromisoformat(page["notifications"][3]["read_at"]) == api.clock.now()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"read": "false"}, ["waiting", "low", "hot"]),
        ({"read": "true"}, ["failing", "demo"]),
        ({"kind": "demo_booked"}, ["demo"]),
        ({"kind": "credits_exhausted"}, []),
        ({"conversation_id": "7"}, ["hot", "demo"]),
        ({"conversation_id": "7", "read": "false"}, ["hot"]),
        ({"since": "2026-01-01T12:03:00Z"}, ["waiting", "low", "failing"]),
        ({"until": "2026-01-01T12:03:00Z"}, ["hot", "demo"]),
    ],
)
def test_the_filters_combine(
    api: Api, tenant: Tenant, told: dict[str, int], params: dict[str, str], expected: list[str]
) -> None:
    assert _titles(_get(api, tenant, "/notifications", **params)) == expected


def test_the_cursor_walks_from_the_unread_into_the_read_once_each(
    api: Api, tenant: Tenant, told: dict[str, int]
) -> None:
    seen: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = _get(api, tenant, "/notifications", **params)
        seen += _titles(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)

    assert seen == ["waiting", "low", "hot", "failing", "demo"]
    assert cursors == [f"u{told['low']}", f"r{told['failing']}"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "hot"}, "kind"),
        ({"read": "yes"}, "read"),
        ({"read": "1"}, "read"),
        ({"conversation_id": "0"}, "conversation_id"),
        ({"conversation_id": "x"}, "conversation_id"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, "until"),
        ({"cursor": "12"}, "cursor"),
        ({"cursor": "x12"}, "cursor"),
        ({"cursor": "u"}, "cursor"),
        ({"cursor": "u１"}, "cursor"),
        ({"cursor": "r" + "9" * 19}, "cursor"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_parameter_is_422_naming_it(api: Api, tenant: Tenant, params: dict[str, str], field: str) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/notifications", query_string=params, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=field)


# --- read and unread ---------------------------------------------------------------------------------


def test_one_notification_is_shown_and_marked_read_then_unread(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    shown = _get(api, tenant, f"/notifications/{told['hot']}")
    read = _mark(api, tenant, told["hot"], {"read": True})
    api.clock.advance(minutes=30)
    again = _mark(api, tenant, told["hot"], {"read": True})
    unread = _mark(api, tenant, told["hot"], {"read": False})

    assert shown["read"] is False
    assert read.status_code == 200 and _json(read)["read"] is True
    assert _json(again)["read_at"] == _json(read)["read_at"]
    assert _json(unread)["read"] is False and _json(unread)["read_at"] is None
    assert {**_json(unread), "read": False} == shown


def test_the_unread_count_follows_the_marks(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    assert _get(api, tenant, "/notifications/unread-count") == {"unread": 3}

    _mark(api, tenant, told["hot"], {"read": True})
    assert _get(api, tenant, "/notifications/unread-count") == {"unread": 2}

    _mark(api, tenant, told["demo"], {"read": False})
    assert _get(api, tenant, "/notifications/unread-count") == {"unread": 3}


def test_read_all_marks_every_unread_one_and_says_how_many(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    url = f"/users/{tenant.user_id}/notifications/read-all"

    first = api.client.post(url, headers=tenant.headers)
    second = api.client.post(url, headers=tenant.headers)

    assert (first.status_code, _json(first)) == (200, {"marked": 3})
    assert _json(second) == {"marked": 0}
    assert _get(api, tenant, "/notifications/unread-count") == {"unread": 0}
    assert all(n["read"] for n in _get(api, tenant, "/notifications")["notifications"])


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "read"), ({"read": "true"}, "read"), ({"read": None}, "read"), ({"read": 1}, "read"), ([], None)],
)
def test_a_bad_mark_is_422(api: Api, tenant: Tenant, told: dict[str, int], body: object, field: str | None) -> None:
    _error(_mark(api, tenant, told["hot"], body), 422, "validation_failed", field=field)
    assert _get(api, tenant, f"/notifications/{told['hot']}")["read"] is False


def test_a_mark_without_a_json_body_is_400(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    response = api.client.patch(
        f"/users/{tenant.user_id}/notifications/{told['hot']}", data="read", headers=tenant.headers
    )

    _error(response, 400, "malformed_json")


def test_another_tenants_or_an_unknown_notification_is_404(
    api: Api, tenant: Tenant, other: Tenant, told: dict[str, int]
) -> None:
    for notification_id in (told["theirs"], 999, "abc", "9" * 30):
        _error(
            api.client.get(f"/users/{tenant.user_id}/notifications/{notification_id}", headers=tenant.headers),
            404,
            "not_found",
        )
        _error(_mark(api, tenant, notification_id, {"read": True}), 404, "not_found")
    assert _get(api, other, f"/notifications/{told['theirs']}")["read"] is False
    assert _titles(_get(api, other, "/notifications")) == ["theirs"]


# --- settings ----------------------------------------------------------------------------------------


def _settings(api: Api, tenant: Tenant, body: object) -> Any:
    return api.client.patch(f"/users/{tenant.user_id}/notification-settings", json=body, headers=tenant.headers)


def test_the_settings_start_at_the_defaults(api: Api, tenant: Tenant) -> None:
    assert _get(api, tenant, "/notification-settings") == {
        "hot_lead": {"urgency": 3, "budget": 2, "fit": 3, "engagement": None},
        "credits_low_at": 50,
    }


def test_a_patch_changes_the_scores_it_names_and_keeps_the_rest(api: Api, tenant: Tenant) -> None:
    first = _settings(api, tenant, {"hot_lead": {"engagement": 2, "budget": None}})
    second = _settings(api, tenant, {"credits_low_at": 10})

    assert first.status_code == 200
    assert _json(first) == {"hot_lead": {"urgency": 3, "budget": None, "fit": 3, "engagement": 2}, "credits_low_at": 50}
    assert _json(second) == {
        "hot_lead": {"urgency": 3, "budget": None, "fit": 3, "engagement": 2},
        "credits_low_at": 10,
    }
    assert _get(api, tenant, "/notification-settings") == _json(second)
    assert _json(_settings(api, tenant, {})) == _json(second)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hot_lead": {"speed": 3}}, "hot_lead"),
        ({"hot_lead": {"urgency": 4}}, "hot_lead.urgency"),
        ({"hot_lead": {"urgency": 0}}, "hot_lead.urgency"),
        ({"hot_lead": {"urgency": "3"}}, "hot_lead"),
        ({"hot_lead": {"urgency": None, "budget": None, "fit": None}}, "hot_lead"),
        ({"hot_lead": None}, "hot_lead"),
        ({"hot_lead": [3]}, "hot_lead"),
        ({"credits_low_at": -1}, "credits_low_at"),
        ({"credits_low_at": 10_000_001}, "credits_low_at"),
        ({"credits_low_at": "50"}, "credits_low_at"),
        ({"credits_low_at": None}, "credits_low_at"),
    ],
)
def test_a_bad_setting_is_422_naming_it_and_changes_nothing(
    api: Api, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    before = _get(api, tenant, "/notification-settings")

    _error(_settings(api, tenant, body), 422, "validation_failed", field=field)

    assert _get(api, tenant, "/notification-settings") == before


# --- who may call them -------------------------------------------------------------------------------


ROUTES = [
    ("GET", "/notifications"),
    ("GET", "/notifications/unread-count"),
    ("POST", "/notifications/read-all"),
    ("GET", "/notifications/1"),
    ("PATCH", "/notifications/1"),
    ("GET", "/notification-settings"),
    ("PATCH", "/notification-settings"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_the_tenants_key(api: Api, tenant: Tenant, other: Tenant, method: str, path: str) -> None:
    url = f"/users/{tenant.user_id}{path}"
    body = {"read": True} if path.startswith("/notifications/1") else {"credits_low_at": 5}
    _error(api.client.open(url, method=method, json=body), 401, "unauthorized")
    _error(api.client.open(url, method=method, json=body, headers=other.headers), 404, "not_found")
    _error(api.client.open(f"/users/usr_nobody{path}", method=method, json=body, headers=api.admin), 404, "not_found")


def test_the_admin_reads_and_marks_a_tenants_notifications(api: Api, tenant: Tenant, told: dict[str, int]) -> None:
    listed = api.client.get(f"/users/{tenant.user_id}/notifications", headers=api.admin)
    marked = api.client.post(f"/users/{tenant.user_id}/notifications/read-all", headers=api.admin)

    assert _titles(_json(listed)) == ["waiting", "low", "hot", "failing", "demo"]
    assert _json(marked) == {"marked": 3}
