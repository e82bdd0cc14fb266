"""The leads through the REST API (embedded container): `GET /users/{id}/extractions` (the latest reading of
each conversation, every filter, the cursor) and a conversation's history, each answer checked against the
OpenAPI document by the test client."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from adapters.memory.unit_of_work import InMemoryUnitOfWork
from domain.extraction import FIELDS, NOT_STATED, Extraction, LeadFields
from tests.unit.test_http_api import Api, Tenant, _error, _json

LEAD_KEYS = {
    "extraction_id",
    "conversation_id",
    "phone_number_id",
    "channel",
    "through_sequence_no",
    *FIELDS,
    "missing",
    "credits_charged",
    "created_at",
}


def conversation(api: Api, phone_number_id: str, customer: str) -> int:
    """A customer writes on the channel; the id of their conversation."""
    api.receive(phone_number_id, customer, "Hi")
    tables = api.container.memory_store().tables
    return max(
        c.conversation_id
        for c in tables.conversations.values()
        if c.customer_id == customer and c.phone_number_id == phone_number_id
    )


def extract(api: Api, conversation_id: int, through: int = 1, charged: int = 0, **answer: object) -> int:
    """What the extraction job stores after reading the conversation up to message `through`."""
    api.clock.advance(minutes=1)
    store = api.container.memory_store()
    found = store.tables.conversations[conversation_id]
    fields = LeadFields.from_answer(answer, written_at=api.clock.now())
    with InMemoryUnitOfWork(store) as uow:
        stored = uow.extractions.add(
            Extraction(
                None,
                found.user_id,
                conversation_id,
                found.phone_number_id,
                through,
                fields,
                api.clock.now(),
                credits_charged=charged,
            )
        )
        uow.commit()
    assert stored is not None and stored.extraction_id is not None
    return stored.extraction_id


def _get(api: Api, tenant: Tenant, path: str, **params: object) -> dict[str, Any]:
    response = api.client.get(f"/users/{tenant.user_id}{path}", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return _json(response)


def _ids(page: dict[str, Any]) -> list[int]:
    return [lead["extraction_id"] for lead in page["extractions"]]


@pytest.fixture
def leads(api: Api, tenant: Tenant, other: Tenant) -> dict[str, int]:
    """`tenant` with leads on WhatsApp and web chat; `other` with one of its own. Extraction ids by name."""
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    widget = api.client.post(
        f"/users/{tenant.user_id}/phone_numbers",
        json={"type": "webchat", "phone_number_id": "wc_shop", "external_number": "shop.example"},
        headers=tenant.headers,
    )
    assert widget.status_code == 201, widget.json
    api.create_agent(tenant, "wc_shop")
    api.add_whatsapp(other, "pn_other")
    api.create_agent(other, "pn_other")
    ana, bob, cleo = (conversation(api, "pn_1", who) for who in ("ana", "bob", "cleo"))
    visitor = conversation(api, "wc_shop", "visitor-1")
    theirs = conversation(api, "pn_other", "dave")
    return {
        "ana_old": extract(api, ana, 1, name="Ana", urgency=1),
        "bob": extract(api, bob, 1, name="Bob", urgency=2, budget=2, fit=2, engagement=2),
        "theirs": extract(api, theirs, 1, name="Dave", urgency=3),
        "visitor": extract(api, visitor, 1, email="vi@site.example", fit=3),
        "cleo": extract(
            api,
            cleo,
            1,
            name="Cleo",
            urgency=3,
            budget=3,
            fit=3,
            engagement=3,
            demo_datetime="2026-01-05T15:00:00+01:00",
        ),
        "ana": extract(api, ana, 3, charged=2, name="Ana", email="ana@", company="Shop", urgency=3, budget=1),
    }


# --- the latest lead of each conversation --------------------------------------------------------


def test_the_latest_reading_of_each_conversation_is_listed_newest_first(
    api: Api, tenant: Tenant, leads: dict[str, int]
) -> None:
    page = _get(api, tenant, "/extractions")

    assert _ids(page) == [leads["ana"], leads["cleo"], leads["visitor"], leads["bob"]]
    assert page["next_cursor"] is None
    ana = page["extractions"][0]
    assert set(ana) == LEAD_KEYS
    assert (ana["phone_number_id"], ana["channel"], ana["through_sequence_no"]) == ("pn_1", "whatsapp", 3)
    assert (ana["name"], ana["company"], ana["urgency"], ana["budget"]) == ("Ana", "Shop", 3, 1)
    assert ana["email"] is None and ana["missing"]["email"] == "'ana@' is not an e-mail address"
    assert ana["missing"]["fit"] == NOT_STATED and ana["fit"] is None
    assert set(ana["missing"]) == {name for name in FIELDS if ana[name] is None}
    assert ana["credits_charged"] == 2
    assert datetime.fromisoformat(ana["created_at"]) == api.clock.now()
    assert page["extractions"][2]["channel"] == "webchat"


def test_a_demo_is_shown_in_the_customers_own_offset(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    (cleo,) = _get(api, tenant, "/extractions", has_demo="true")["extractions"]

    assert cleo["demo_datetime"] == "2026-01-05T15:00:00+01:00"
    assert datetime.fromisoformat(cleo["demo_datetime"]).utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"channel": "webchat"}, ["visitor"]),
        ({"channel": "whatsapp"}, ["ana", "cleo", "bob"]),
        ({"channel": "instagram"}, []),
        ({"phone_number_id": "wc_shop"}, ["visitor"]),
        ({"min_urgency": "3"}, ["ana", "cleo"]),
        ({"min_urgency": "2"}, ["ana", "cleo", "bob"]),
        ({"min_budget": "2"}, ["cleo", "bob"]),
        ({"min_fit": "3"}, ["cleo", "visitor"]),
        ({"min_engagement": "3"}, ["cleo"]),
        ({"min_urgency": "3", "min_budget": "3"}, ["cleo"]),
        ({"has_demo": "true"}, ["cleo"]),
        ({"has_demo": "false"}, ["ana", "visitor", "bob"]),
        ({"since": "2026-01-01T12:09:00Z"}, ["ana", "cleo", "visitor"]),
        ({"until": "2026-01-01T12:09:00Z"}, ["bob"]),
        ({"since": "2026-01-01T13:09:00+01:00", "until": "2026-01-01T12:10:00Z"}, ["visitor"]),
    ],
)
def test_the_filters_combine(
    api: Api, tenant: Tenant, leads: dict[str, int], params: dict[str, str], expected: list[str]
) -> None:
    assert _ids(_get(api, tenant, "/extractions", **params)) == [leads[name] for name in expected]


def test_the_cursor_walks_every_lead_once(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    seen: list[int] = []
    cursor: int | None = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 1, "channel": "whatsapp"}
        if cursor is not None:
            params["cursor"] = cursor
        page = _get(api, tenant, "/extractions", **params)
        seen += _ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [leads["ana"], leads["cleo"], leads["bob"]]


def test_a_tenant_without_leads_gets_an_empty_page(api: Api, tenant: Tenant) -> None:
    assert _get(api, tenant, "/extractions") == {"extractions": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"channel": "sms"}, "channel"),
        ({"channel": "WhatsApp"}, "channel"),
        ({"phone_number_id": " "}, "phone_number_id"),
        ({"phone_number_id": "p" * 65}, "phone_number_id"),
        ({"min_urgency": "0"}, "min_urgency"),
        ({"min_budget": "4"}, "min_budget"),
        ({"min_fit": "high"}, "min_fit"),
        ({"min_engagement": "-1"}, "min_engagement"),
        ({"has_demo": "yes"}, "has_demo"),
        ({"has_demo": "True"}, "has_demo"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T12:00:00"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "0"}, "cursor"),
        ({"cursor": "9" * 19}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
    ],
)
def test_a_bad_parameter_is_422_naming_it(api: Api, tenant: Tenant, params: dict[str, str], field: str) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/extractions", query_string=params, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=field)


def test_unknown_parameters_are_ignored(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    assert _get(api, tenant, "/extractions", colour="red") == _get(api, tenant, "/extractions")


# --- one conversation's history ----------------------------------------------------------------------


def test_a_conversations_history_is_every_reading_newest_first(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    ana = _get(api, tenant, "/extractions", limit=1)["extractions"][0]

    page = _get(api, tenant, f"/conversations/{ana['conversation_id']}/extractions")

    assert _ids(page) == [leads["ana"], leads["ana_old"]]
    assert page["extractions"][0] == ana
    assert page["extractions"][1]["urgency"] == 1 and page["extractions"][1]["through_sequence_no"] == 1


def test_the_history_pages_with_its_cursor(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    conversation_id = _get(api, tenant, "/extractions", limit=1)["extractions"][0]["conversation_id"]
    path = f"/conversations/{conversation_id}/extractions"

    first = _get(api, tenant, path, limit=1)
    second = _get(api, tenant, path, limit=1, cursor=first["next_cursor"])

    assert _ids(first) == [leads["ana"]] and first["next_cursor"] == leads["ana"]
    assert _ids(second) == [leads["ana_old"]] and second["next_cursor"] is None


def test_a_conversation_without_readings_has_an_empty_history(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    quiet = conversation(api, "pn_1", "eve")

    assert _get(api, tenant, f"/conversations/{quiet}/extractions") == {"extractions": [], "next_cursor": None}


def test_another_tenants_or_an_unknown_conversation_has_no_history(
    api: Api, tenant: Tenant, other: Tenant, leads: dict[str, int]
) -> None:
    theirs = _get(api, other, "/extractions")["extractions"][0]["conversation_id"]

    for conversation_id in (theirs, 999, "abc", "9" * 30):
        response = api.client.get(
            f"/users/{tenant.user_id}/conversations/{conversation_id}/extractions", headers=tenant.headers
        )
        _error(response, 404, "not_found")
    response = api.client.get(f"/users/{other.user_id}/conversations/{theirs}/extractions", headers=tenant.headers)
    _error(response, 404, "not_found")
    assert leads["theirs"] not in _ids(_get(api, tenant, "/extractions"))


@pytest.mark.parametrize(("params", "field"), [({"cursor": "x"}, "cursor"), ({"limit": "500"}, "limit")])
def test_a_bad_history_parameter_is_422_naming_it(
    api: Api, tenant: Tenant, leads: dict[str, int], params: dict[str, str], field: str
) -> None:
    conversation_id = _get(api, tenant, "/extractions", limit=1)["extractions"][0]["conversation_id"]

    response = api.client.get(
        f"/users/{tenant.user_id}/conversations/{conversation_id}/extractions",
        query_string=params,
        headers=tenant.headers,
    )

    _error(response, 422, "validation_failed", field=field)


# --- who may read them -------------------------------------------------------------------------------


def test_the_lead_routes_need_the_api_key(api: Api, tenant: Tenant, leads: dict[str, int]) -> None:
    for path in ("/extractions", "/conversations/1/extractions"):
        _error(api.client.get(f"/users/{tenant.user_id}{path}"), 401, "unauthorized")
        _error(api.client.get(f"/users/{tenant.user_id}{path}", headers={"x-api-key": "nope"}), 401, "unauthorized")


def test_another_tenants_key_finds_no_leads_and_the_admin_finds_them(
    api: Api, tenant: Tenant, other: Tenant, leads: dict[str, int]
) -> None:
    _error(api.client.get(f"/users/{tenant.user_id}/extractions", headers=other.headers), 404, "not_found")
    as_admin = api.client.get(f"/users/{tenant.user_id}/extractions", headers=api.admin)

    assert _ids(_json(as_admin)) == _ids(_get(api, tenant, "/extractions"))
    _error(api.client.get("/users/usr_nobody/extractions", headers=api.admin), 404, "not_found")
