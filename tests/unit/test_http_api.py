"""The management REST API, driven through Flask's test client on the embedded (in-memory) container."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from attrs import frozen
from flask.testing import FlaskClient
from freezegun import freeze_time
from werkzeug.test import TestResponse

from adapters.memory.services import FixedClock
from application.use_cases.handle_inbound_message import HandleInbound
from domain import limits
from domain.messages import InboundMessage
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

ACCESS_TOKEN = "EAAG-very-secret-access-token-0123456789"
ERROR_KEYS = {"code", "message", "field", "correlation_id", "timestamp"}


@frozen
class Tenant:
    user_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


class Api:
    """The test client plus the admin key and a few provisioning shortcuts."""

    def __init__(self, client: FlaskClient, container: Container, clock: FixedClock) -> None:
        self.client = client
        self.container = container
        self.clock = clock
        self.admin = {"x-api-key": container.settings().admin_api_key}

    def create_tenant(self, email: str) -> Tenant:
        response = self.client.post("/users", json={"email": email}, headers=self.admin)
        assert response.status_code == 201, response.json
        body = response.json
        assert body is not None
        return Tenant(user_id=body["user"]["user_id"], api_key=body["api_key"])

    def add_whatsapp(self, tenant: Tenant, phone_number_id: str) -> dict[str, Any]:
        response = self.client.post(
            f"/users/{tenant.user_id}/phone_numbers",
            json={
                "type": "whatsapp",
                "phone_number_id": phone_number_id,
                "external_number": "+1 555 0100",
                "access_token": ACCESS_TOKEN,
                "display_name": "Shop",
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.json
        return _json(response)

    def create_agent(self, tenant: Tenant, phone_number_id: str) -> dict[str, Any]:
        response = self.client.post(
            f"/users/{tenant.user_id}/agents",
            json={"name": "Sales", "prompt_id": "pmpt_sales", "phone_number_id": phone_number_id},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.json
        return _json(response)

    def receive(
        self, phone_number_id: str, customer: str, text: str | None = "hello", *, skip_reason: str | None = None
    ) -> None:
        """A customer's message stored by the pipeline, one clock minute after the previous one."""
        self.clock.advance(minutes=1)
        handle = self.container.handle_inbound_message()
        handle(
            HandleInbound(
                InboundMessage(
                    phone_number_id=phone_number_id,
                    platform_message_id=f"wamid.{self.clock.now().timestamp()}.{customer}",
                    customer_id=customer,
                    customer_name=None,
                    content_type="text" if text is not None else "image",
                    text=text,
                    skip_reason=skip_reason,
                    sent_at=self.clock.now(),
                    raw={},
                )
            )
        )


def _json(response: TestResponse) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict), response.data
    return body


def _error(response: TestResponse, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.data
    body = _json(response)
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == code
    assert error["field"] == field
    assert error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    assert datetime.fromisoformat(error["timestamp"]).tzinfo is not None
    return error


# --- users -------------------------------------------------------------------------------------


def test_an_error_says_when_it_happened_by_the_real_clock(api: Api) -> None:
    with freeze_time("2026-07-04 09:30:00", tz_offset=0):
        answer = api.client.get("/users/usr_nobody", headers={"x-api-key": "not-a-key"})

    error = _error(answer, 401, "unauthorized")
    assert datetime.fromisoformat(error["timestamp"]) == datetime(2026, 7, 4, 9, 30, tzinfo=UTC)


def test_admin_creates_a_user_and_sees_its_api_key_once(api: Api) -> None:
    response = api.client.post(
        "/users", json={"email": " Owner@Shop.Example ", "company_name": "Shop"}, headers=api.admin
    )

    assert response.status_code == 201
    body = _json(response)
    assert body["api_key"].startswith("mca_")
    user = body["user"]
    assert user["email"] == "owner@shop.example"
    assert user["company_name"] == "Shop"
    assert user["user_id"].startswith("usr_")
    assert datetime.fromisoformat(user["created_at"]).tzinfo is not None
    assert "api_key_hash" not in user

    fetched = api.client.get(f"/users/{user['user_id']}", headers={"x-api-key": body["api_key"]})
    assert fetched.status_code == 200
    assert _json(fetched) == user
    assert body["api_key"] not in fetched.get_data(as_text=True)


def test_a_tenant_key_cannot_create_users(api: Api, tenant: Tenant) -> None:
    response = api.client.post("/users", json={"email": "new@shop.example"}, headers=tenant.headers)

    _error(response, 404, "not_found")


def test_a_second_user_with_the_same_email_conflicts(api: Api, tenant: Tenant) -> None:
    response = api.client.post("/users", json={"email": "OWNER@shop.example"}, headers=api.admin)

    _error(response, 409, "conflict", field="email")


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"email": "not-an-email"}, "valid e-mail"),
        ({}, "required field missing @ body.email"),
        ({"email": 42}, "expected a string, got a number @ body.email"),
        ({"email": None}, "expected a string, got null @ body.email"),
    ],
)
def test_a_bad_email_is_422_naming_the_field(api: Api, body: dict[str, Any], message_part: str) -> None:
    error = _error(api.client.post("/users", json=body, headers=api.admin), 422, "validation_failed", field="email")

    assert message_part in error["message"]


def test_unknown_body_keys_are_ignored(api: Api) -> None:
    response = api.client.post("/users", json={"email": "a@shop.example", "plan": "gold"}, headers=api.admin)

    assert response.status_code == 201


def test_malformed_json_is_400(api: Api) -> None:
    response = api.client.post("/users", data='{"email": ', content_type="application/json", headers=api.admin)

    _error(response, 400, "malformed_json")


def test_an_empty_body_is_malformed_json(api: Api) -> None:
    _error(api.client.post("/users", headers=api.admin), 400, "malformed_json")


def test_a_body_that_is_not_an_object_is_422(api: Api) -> None:
    error = _error(api.client.post("/users", json=["a@shop.example"], headers=api.admin), 422, "validation_failed")

    assert "JSON object" in error["message"]


def test_a_missing_user_is_404_for_the_admin(api: Api) -> None:
    _error(api.client.get("/users/usr_missing", headers=api.admin), 404, "not_found")


# --- the error body and the correlation id -----------------------------------------------------


def test_the_correlation_id_of_the_request_is_echoed_and_put_in_errors(api: Api) -> None:
    response = api.client.get("/users/usr_x", headers={"x-correlation-id": "req-42.abc"})

    assert response.headers["x-correlation-id"] == "req-42.abc"
    assert _error(response, 401, "unauthorized")["correlation_id"] == "req-42.abc"


def test_a_successful_response_carries_the_correlation_id_too(api: Api, tenant: Tenant) -> None:
    response = api.client.get(f"/users/{tenant.user_id}", headers={**tenant.headers, "x-correlation-id": "abc"})

    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "abc"


@pytest.mark.parametrize("given", [None, "", "has spaces in it", "x" * 200, "semi;colon"])
def test_a_missing_or_malformed_correlation_id_is_replaced_by_a_generated_one(api: Api, given: str | None) -> None:
    headers = {} if given is None else {"x-correlation-id": given}

    response = api.client.get("/users/usr_x", headers=headers)

    generated = response.headers["x-correlation-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert _error(response, 401, "unauthorized")["correlation_id"] == generated


def test_unknown_routes_and_methods_answer_with_the_same_error_body(api: Api, tenant: Tenant) -> None:
    _error(api.client.get("/nowhere", headers=tenant.headers), 404, "not_found")
    _error(api.client.delete(f"/users/{tenant.user_id}", headers=tenant.headers), 405, "method_not_allowed")


# --- authentication and tenant scoping ---------------------------------------------------------


def _routes(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every tenant route, with a body that would be valid for it."""
    return [
        ("GET", f"/users/{user_id}", None),
        ("GET", f"/users/{user_id}/phone_numbers", None),
        ("POST", f"/users/{user_id}/phone_numbers", {"type": "webchat", "external_number": "https://shop.example"}),
        ("GET", f"/users/{user_id}/agents", None),
        ("POST", f"/users/{user_id}/agents", {"name": "A", "prompt_id": "pmpt_a", "phone_number_id": "pn_1"}),
        ("GET", f"/users/{user_id}/credits", None),
        ("POST", f"/users/{user_id}/credits", {"amount": 5}),
        ("GET", f"/users/{user_id}/messages", None),
    ]


ROUTE_COUNT = len(_routes("u"))


@pytest.mark.parametrize("index", range(ROUTE_COUNT))
@pytest.mark.parametrize("key", [None, "mca_wrong-key"])
def test_a_missing_or_wrong_api_key_is_401_on_every_route(
    api: Api, tenant: Tenant, index: int, key: str | None
) -> None:
    method, path, body = _routes(tenant.user_id)[index]
    headers = {} if key is None else {"x-api-key": key}

    response = api.client.open(path, method=method, json=body, headers=headers)

    _error(response, 401, "unauthorized")


@pytest.mark.parametrize("index", range(ROUTE_COUNT))
def test_another_tenants_resources_answer_404_on_every_route(
    api: Api, tenant: Tenant, other: Tenant, index: int
) -> None:
    api.add_whatsapp(other, "pn_1")
    method, path, body = _routes(other.user_id)[index]

    response = api.client.open(path, method=method, json=body, headers=tenant.headers)

    _error(response, 404, "not_found")


def test_another_tenants_paths_answer_404_before_the_body_is_read(api: Api, tenant: Tenant, other: Tenant) -> None:
    response = api.client.post(f"/users/{other.user_id}/phone_numbers", data="not json", headers=tenant.headers)

    _error(response, 404, "not_found")


@pytest.mark.parametrize("index", range(ROUTE_COUNT))
def test_the_admin_key_reaches_every_route(api: Api, tenant: Tenant, index: int) -> None:
    api.add_whatsapp(tenant, "pn_1")
    method, path, body = _routes(tenant.user_id)[index]

    response = api.client.open(path, method=method, json=body, headers=api.admin)

    assert response.status_code in (200, 201), response.json


def test_the_api_key_header_name_comes_from_the_settings() -> None:
    container = build_container(Settings.from_env({"API_KEY_HEADER": "x-shop-key"}, dev=True))
    client = create_app(container).test_client()

    created = client.post("/users", json={"email": "a@shop.example"}, headers={"x-shop-key": "dev-admin-key"})
    ignored = client.post("/users", json={"email": "b@shop.example"}, headers={"x-api-key": "dev-admin-key"})

    assert created.status_code == 201
    _error(ignored, 401, "unauthorized")


# --- channels ----------------------------------------------------------------------------------


def test_a_whatsapp_channel_never_shows_its_access_token(api: Api, tenant: Tenant) -> None:
    created = api.add_whatsapp(tenant, "pn_1")
    listed = api.client.get(f"/users/{tenant.user_id}/phone_numbers", headers=tenant.headers)

    assert created == {
        "phone_number_id": "pn_1",
        "user_id": tenant.user_id,
        "type": "whatsapp",
        "external_number": "+1 555 0100",
        "display_name": "Shop",
        "created_at": created["created_at"],
        "access_token": "…6789",
        "bot": "active",
        "allowed_origins": [],
    }
    assert _json(listed) == {"phone_numbers": [created]}
    assert ACCESS_TOKEN not in listed.get_data(as_text=True)


def test_a_webchat_channel_gets_a_generated_id_and_no_token(api: Api, tenant: Tenant) -> None:
    response = api.client.post(
        f"/users/{tenant.user_id}/phone_numbers",
        json={"type": "webchat", "external_number": "https://shop.example"},
        headers=tenant.headers,
    )

    assert response.status_code == 201
    channel = _json(response)
    assert channel["phone_number_id"].startswith("wc_")
    assert channel["access_token"] is None


@pytest.mark.parametrize("missing", ["phone_number_id", "access_token"])
def test_a_whatsapp_channel_requires_its_meta_id_and_token(api: Api, tenant: Tenant, missing: str) -> None:
    body = {"type": "whatsapp", "phone_number_id": "pn_1", "external_number": "+1 555", "access_token": ACCESS_TOKEN}
    del body[missing]

    response = api.client.post(f"/users/{tenant.user_id}/phone_numbers", json=body, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=missing)


def test_an_unknown_channel_type_is_422_listing_the_types(api: Api, tenant: Tenant) -> None:
    response = api.client.post(
        f"/users/{tenant.user_id}/phone_numbers", json={"type": "fax", "external_number": "1"}, headers=tenant.headers
    )

    error = _error(response, 422, "validation_failed", field="type")
    assert "whatsapp, instagram, webchat" in error["message"]


def test_a_phone_number_id_registered_by_anyone_conflicts(api: Api, tenant: Tenant, other: Tenant) -> None:
    api.add_whatsapp(other, "pn_1")
    body = {"type": "whatsapp", "phone_number_id": "pn_1", "external_number": "+1", "access_token": ACCESS_TOKEN}

    response = api.client.post(f"/users/{tenant.user_id}/phone_numbers", json=body, headers=tenant.headers)

    _error(response, 409, "conflict", field="phone_number_id")


# --- agents ------------------------------------------------------------------------------------


def test_an_agent_is_created_on_a_channel_and_listed(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    response = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"name": "Sales", "prompt_id": "pmpt_sales", "prompt_version": "3", "phone_number_id": "pn_1"},
        headers=tenant.headers,
    )

    assert response.status_code == 201
    agent = _json(response)
    assert agent["agent_id"].startswith("agt_")
    assert {k: agent[k] for k in ("user_id", "name", "prompt_id", "prompt_version", "phone_number_id")} == {
        "user_id": tenant.user_id,
        "name": "Sales",
        "prompt_id": "pmpt_sales",
        "prompt_version": "3",
        "phone_number_id": "pn_1",
    }
    listed = api.client.get(f"/users/{tenant.user_id}/agents", headers=tenant.headers)
    assert _json(listed) == {"agents": [agent]}


def test_a_channel_takes_one_agent_only(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")

    response = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"name": "Support", "prompt_id": "pmpt_support", "phone_number_id": "pn_1"},
        headers=tenant.headers,
    )

    _error(response, 409, "conflict", field="phone_number_id")


def test_a_prompt_id_must_be_an_openai_prompt_id(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")

    response = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"name": "Sales", "prompt_id": "sales-prompt", "phone_number_id": "pn_1"},
        headers=tenant.headers,
    )

    _error(response, 422, "validation_failed", field="prompt_id")


def test_an_agent_cannot_use_another_tenants_channel(api: Api, tenant: Tenant, other: Tenant) -> None:
    api.add_whatsapp(other, "pn_theirs")

    response = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"name": "Sales", "prompt_id": "pmpt_sales", "phone_number_id": "pn_theirs"},
        headers=tenant.headers,
    )

    _error(response, 404, "not_found", field="phone_number_id")


def test_an_agent_without_a_name_is_422(api: Api, tenant: Tenant) -> None:
    response = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"prompt_id": "pmpt_a", "phone_number_id": "pn_1"},
        headers=tenant.headers,
    )

    _error(response, 422, "validation_failed", field="name")


# --- credits -----------------------------------------------------------------------------------


def _credits(api: Api, tenant: Tenant) -> dict[str, Any]:
    response = api.client.get(f"/users/{tenant.user_id}/credits", headers=tenant.headers)
    assert response.status_code == 200
    return _json(response)


def test_the_admin_tops_up_and_the_tenant_sees_the_new_balance_at_once(api: Api, tenant: Tenant) -> None:
    assert _credits(api, tenant) == {
        "user_id": tenant.user_id,
        "balance": 0,
        "reserved": 0,
        "available": 0,
        "ledger": [],
        "ledger_next_cursor": None,
    }

    response = api.client.post(
        f"/users/{tenant.user_id}/credits", json={"amount": 500, "reason": "welcome"}, headers=api.admin
    )

    assert response.status_code == 201
    body = _json(response)
    entry = body["entry"]
    assert {k: entry[k] for k in ("user_id", "kind", "amount", "balance_after", "reason", "turn_id")} == {
        "user_id": tenant.user_id,
        "kind": "top_up",
        "amount": 500,
        "balance_after": 500,
        "reason": "welcome",
        "turn_id": None,
    }
    assert isinstance(entry["entry_id"], int)
    assert (body["balance"], body["reserved"], body["available"]) == (500, 0, 500)
    # The first GET cached the zero balance; the top-up must have dropped it.
    assert _credits(api, tenant) == {
        "user_id": tenant.user_id,
        "balance": 500,
        "reserved": 0,
        "available": 500,
        "ledger": [entry],
        "ledger_next_cursor": None,
    }


def test_a_tenant_cannot_top_up_its_own_credits(api: Api, tenant: Tenant) -> None:
    response = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 1000}, headers=tenant.headers)

    _error(response, 404, "not_found")
    assert _credits(api, tenant)["balance"] == 0


def test_a_replayed_idempotency_key_gives_the_same_entry_and_credits_once(api: Api, tenant: Tenant) -> None:
    headers = {**api.admin, "Idempotency-Key": "topup-2025-01-31"}
    first = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 100}, headers=headers)
    again = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 100}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert _json(again)["entry"] == _json(first)["entry"]
    assert _json(again)["balance"] == 100
    credits = _credits(api, tenant)
    assert credits["balance"] == 100
    assert len(credits["ledger"]) == 1


def test_an_overlong_idempotency_key_is_422(api: Api, tenant: Tenant) -> None:
    headers = {**api.admin, "Idempotency-Key": "k" * 256}

    response = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 1}, headers=headers)

    _error(response, 422, "validation_failed", field="Idempotency-Key")


@pytest.mark.parametrize("amount", [0, -5, "100", 1.5, True, None, 10_000_001])
def test_a_top_up_amount_must_be_a_positive_whole_number(api: Api, tenant: Tenant, amount: object) -> None:
    response = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": amount}, headers=api.admin)

    _error(response, 422, "validation_failed", field="amount")


def test_the_ledger_lists_the_latest_twenty_entries_newest_first(api: Api, tenant: Tenant) -> None:
    for amount in range(1, 23):
        api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": amount}, headers=api.admin)

    credits = _credits(api, tenant)

    assert credits["balance"] == sum(range(1, 23))
    assert [entry["amount"] for entry in credits["ledger"]] == list(range(22, 2, -1))


def test_topping_up_a_missing_user_is_404(api: Api) -> None:
    _error(api.client.post("/users/usr_missing/credits", json={"amount": 1}, headers=api.admin), 404, "not_found")


# --- messages ----------------------------------------------------------------------------------


@pytest.fixture
def chatty(api: Api, tenant: Tenant, other: Tenant) -> Tenant:
    """`tenant` with two channels and seven messages (one skipped image); `other` with one of its own."""
    for phone_number_id in ("pn_1", "pn_2"):
        api.add_whatsapp(tenant, phone_number_id)
        api.create_agent(tenant, phone_number_id)
    api.add_whatsapp(other, "pn_other")
    api.create_agent(other, "pn_other")
    api.receive("pn_1", "alice", "hi")  # 12:01
    api.receive("pn_1", "bob", "hello")  # 12:02
    api.receive("pn_1", "alice", "price?")  # 12:03
    api.receive("pn_2", "carol", "open today?")  # 12:04
    api.receive("pn_1", "alice", None, skip_reason="image messages are not answered")  # 12:05
    api.receive("pn_other", "dave", "not yours")  # 12:06
    api.receive("pn_1", "bob", "thanks")  # 12:07
    api.receive("pn_2", "carol", "ok")  # 12:08
    return tenant


def _messages(api: Api, tenant: Tenant, **params: object) -> dict[str, Any]:
    response = api.client.get(f"/users/{tenant.user_id}/messages", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return _json(response)


def _texts(page: dict[str, Any]) -> list[str | None]:
    return [message["text"] for message in page["messages"]]


def test_messages_are_listed_newest_first_without_other_tenants(api: Api, chatty: Tenant) -> None:
    page = _messages(api, chatty)

    assert _texts(page) == ["ok", "thanks", None, "open today?", "price?", "hello", "hi"]
    assert page["next_cursor"] is None
    first = page["messages"][0]
    assert isinstance(first["message_id"], int)
    assert isinstance(first["conversation_id"], int)
    assert first["direction"] == "inbound"
    assert first["status"] == "received"
    assert datetime.fromisoformat(first["created_at"]).tzinfo is not None


def test_messages_are_paginated_with_the_cursor(api: Api, chatty: Tenant) -> None:
    seen: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = _messages(api, chatty, **params)
        pages += 1
        seen += [message["message_id"] for message in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 7


def test_one_conversation_is_listed_in_sequence_order_page_by_page(api: Api, chatty: Tenant) -> None:
    alice = _messages(api, chatty, customer="alice")["messages"][0]["conversation_id"]

    first = _messages(api, chatty, conversation_id=alice, order="sequence", limit=2)
    rest = _messages(api, chatty, conversation_id=alice, order="sequence", limit=2, cursor=first["next_cursor"])

    assert _texts(first) == ["hi", "price?"]
    assert _texts(rest) == [None]
    assert rest["next_cursor"] is None
    assert [m["sequence_no"] for m in first["messages"] + rest["messages"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("params", "texts"),
    [
        ({"phone_number_id": "pn_2"}, ["ok", "open today?"]),
        ({"customer": "bob"}, ["thanks", "hello"]),
        ({"status": "skipped"}, [None]),
        ({"since": "2026-01-01T12:03:00+00:00", "until": "2026-01-01T12:05:00Z"}, ["open today?", "price?"]),
        ({"since": "2026-01-01T13:06:00+01:00"}, ["ok", "thanks"]),
        ({"phone_number_id": "pn_other"}, []),
    ],
)
def test_messages_are_filtered(api: Api, chatty: Tenant, params: dict[str, str], texts: list[str | None]) -> None:
    assert _texts(_messages(api, chatty, **params)) == texts


def test_messages_are_filtered_by_conversation(api: Api, chatty: Tenant) -> None:
    bob = _messages(api, chatty, customer="bob")["messages"][0]["conversation_id"]

    assert _texts(_messages(api, chatty, conversation_id=bob)) == ["thanks", "hello"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "-1"}, "cursor"),
        ({"conversation_id": "abc"}, "conversation_id"),
        ({"status": "lost"}, "status"),
        ({"since": "2026-01-01T12:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"order": "oldest"}, "order"),
        ({"order": "sequence"}, "conversation_id"),
        ({"customer": " "}, "customer"),
        ({"customer": "a\x00b"}, "customer"),
        ({"customer": "c" * 257}, "customer"),
        ({"phone_number_id": "\x00"}, "phone_number_id"),
        ({"phone_number_id": "p" * 65}, "phone_number_id"),
    ],
)
def test_bad_message_parameters_are_422_naming_the_parameter(
    api: Api, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/messages", query_string=params, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=field)


def test_the_default_page_holds_fifty_messages(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    for index in range(51):
        api.receive("pn_1", f"customer{index}")

    page = _messages(api, tenant)

    assert len(page["messages"]) == 50
    assert page["next_cursor"] == page["messages"][-1]["message_id"]
    assert len(_messages(api, tenant, cursor=page["next_cursor"])["messages"]) == 1


# --- what cannot be stored, and bounds ----------------------------------------------------------

#: Every body field with a bound, with a valid body around it and who may send it.
_BOUNDED_FIELDS = [
    ("/users", {"email": "a@b.example"}, "company_name", limits.COMPANY_NAME, True),
    ("/users/{user}/phone_numbers", {"type": "webchat"}, "external_number", limits.EXTERNAL_NUMBER, False),
    (
        "/users/{user}/phone_numbers",
        {"type": "webchat", "external_number": "x"},
        "display_name",
        limits.DISPLAY_NAME,
        False,
    ),
    (
        "/users/{user}/phone_numbers",
        {"type": "whatsapp", "external_number": "x", "access_token": "t"},
        "phone_number_id",
        limits.CHANNEL_ID,
        False,
    ),
    (
        "/users/{user}/phone_numbers",
        {"type": "whatsapp", "external_number": "x", "phone_number_id": "pn_new"},
        "access_token",
        limits.ACCESS_TOKEN,
        False,
    ),
    ("/users/{user}/agents", {"prompt_id": "pmpt_1", "phone_number_id": "pn_1"}, "name", limits.AGENT_NAME, False),
    ("/users/{user}/agents", {"name": "n", "phone_number_id": "pn_1"}, "prompt_id", limits.PROMPT_ID, False),
    ("/users/{user}/agents", {"name": "n", "prompt_id": "pmpt_1"}, "phone_number_id", limits.CHANNEL_ID, False),
    (
        "/users/{user}/agents",
        {"name": "n", "prompt_id": "pmpt_1", "phone_number_id": "pn_1"},
        "prompt_version",
        limits.PROMPT_VERSION,
        False,
    ),
    ("/users/{user}/credits", {"amount": 1}, "reason", limits.TOP_UP_REASON, True),
]
_FIELD_IDS = [f"{path.rsplit('/', 1)[-1]}.{name}" for path, _, name, _, _ in _BOUNDED_FIELDS]


def _post_field(api: Api, tenant: Tenant, case: tuple[str, dict[str, Any], str, int, bool], value: str) -> TestResponse:
    path, body, name, _, admin = case
    return api.client.post(
        path.format(user=tenant.user_id),
        json={**body, name: value},
        headers=api.admin if admin else tenant.headers,
    )


@pytest.mark.parametrize("case", _BOUNDED_FIELDS, ids=_FIELD_IDS)
def test_a_field_over_its_bound_is_422_naming_it_and_one_at_its_bound_is_taken(
    api: Api, tenant: Tenant, case: tuple[str, dict[str, Any], str, int, bool]
) -> None:
    _, _, name, limit, _ = case
    api.add_whatsapp(tenant, "pn_1")

    error = _error(_post_field(api, tenant, case, "pmpt_" + "x" * limit), 422, "validation_failed", field=name)
    assert f"at most {limit} characters" in error["message"]
    # At the bound: taken (201), or, for an agent on a channel of that id, not found (404), not a 422.
    at_bound = ("pmpt_" + "x" * limit)[:limit]
    assert _post_field(api, tenant, case, at_bound).status_code in (201, 404)


@pytest.mark.parametrize("case", _BOUNDED_FIELDS, ids=_FIELD_IDS)
@pytest.mark.parametrize("unstorable", ["a\x00b", "half \ud800"], ids=["nul", "lone-surrogate"])
def test_a_field_holding_nul_or_a_lone_surrogate_is_422_naming_it(
    api: Api, tenant: Tenant, case: tuple[str, dict[str, Any], str, int, bool], unstorable: str
) -> None:
    error = _error(_post_field(api, tenant, case, unstorable), 422, "validation_failed", field=case[2])
    assert "NUL" in error["message"]


def test_an_email_holding_nul_is_422(api: Api) -> None:
    response = api.client.post("/users", json={"email": "own\x00er@shop.example"}, headers=api.admin)

    _error(response, 422, "validation_failed", field="email")


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b'{"email": Infinity}', b"[" * 50_000 + b"]" * 50_000, b'{"amount": ' + b"9" * 5_000 + b"}"],
    ids=["nan", "infinity", "nested-too-deeply", "integer-of-5000-digits"],
)
def test_json_pythons_parser_trips_on_is_a_4xx_not_a_crash(api: Api, tenant: Tenant, raw: bytes) -> None:
    response = api.client.post(f"/users/{tenant.user_id}/credits", data=raw, headers=api.admin)

    assert response.status_code in (400, 422), response.data


def test_a_value_nested_too_deeply_to_write_back_is_named_by_its_type(api: Api, tenant: Tenant) -> None:
    raw = b'{"type": ' + b"[" * 900 + b"]" * 900 + b', "external_number": "x"}'

    response = api.client.post(f"/users/{tenant.user_id}/phone_numbers", data=raw, headers=tenant.headers)

    assert "got an array" in _error(response, 422, "validation_failed", field="type")["message"]


@pytest.mark.parametrize("user_id", ["usr%00x", "u" * 65, ""], ids=["nul", "longer-than-any-id", "empty"])
def test_a_path_that_cannot_name_a_user_is_404_even_for_the_admin(api: Api, user_id: str) -> None:
    for path in (f"/users/{user_id}", f"/users/{user_id}/credits", f"/users/{user_id}/messages"):
        _error(api.client.get(path, headers=api.admin), 404, "not_found")


def test_an_idempotency_key_holding_nul_is_422(api: Api, tenant: Tenant) -> None:
    headers = {**api.admin, "Idempotency-Key": "key\x00"}

    response = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 1}, headers=headers)

    _error(response, 422, "validation_failed", field="Idempotency-Key")
