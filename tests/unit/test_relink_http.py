"""GET/PATCH/DELETE of an agent and DELETE of a channel through the REST API (embedded container)."""

from __future__ import annotations

from typing import Any

from tests.unit.test_http_api import Api, Tenant, _error, _json


def _agent_without_channel(api: Api, tenant: Tenant, name: str = "Support") -> dict[str, Any]:
    response = api.client.post(
        f"/users/{tenant.user_id}/agents", json={"name": name, "prompt_id": "pmpt_support"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.json
    return _json(response)


def test_an_agent_without_a_channel_shows_null(api: Api, tenant: Tenant) -> None:
    created = _agent_without_channel(api, tenant)

    fetched = api.client.get(f"/users/{tenant.user_id}/agents/{created['agent_id']}", headers=tenant.headers)

    assert _json(fetched) == created
    assert created["phone_number_id"] is None
    assert "deleted_at" not in created


def test_patch_changes_only_the_keys_given(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    agent = api.create_agent(tenant, "pn_1")
    url = f"/users/{tenant.user_id}/agents/{agent['agent_id']}"

    renamed = api.client.patch(url, json={"name": "Sales EU", "prompt_version": "4"}, headers=tenant.headers)
    latest = api.client.patch(url, json={"prompt_version": None}, headers=tenant.headers)

    assert renamed.status_code == 200
    assert {k: _json(renamed)[k] for k in ("name", "prompt_id", "prompt_version", "phone_number_id")} == {
        "name": "Sales EU",
        "prompt_id": "pmpt_sales",
        "prompt_version": "4",
        "phone_number_id": "pn_1",
    }
    assert _json(latest)["prompt_version"] is None and _json(latest)["name"] == "Sales EU"


def test_patch_relinks_a_channel_from_one_agent_to_another(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    sales = api.create_agent(tenant, "pn_1")
    support = _agent_without_channel(api, tenant)

    moved = api.client.patch(
        f"/users/{tenant.user_id}/agents/{support['agent_id']}",
        json={"phone_number_id": "pn_1"},
        headers=tenant.headers,
    )

    assert _json(moved)["phone_number_id"] == "pn_1"
    old = api.client.get(f"/users/{tenant.user_id}/agents/{sales['agent_id']}", headers=tenant.headers)
    assert _json(old)["phone_number_id"] is None


def test_patch_null_unlinks(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    agent = api.create_agent(tenant, "pn_1")

    response = api.client.patch(
        f"/users/{tenant.user_id}/agents/{agent['agent_id']}", json={"phone_number_id": None}, headers=tenant.headers
    )

    assert _json(response)["phone_number_id"] is None


def test_patch_to_another_tenants_channel_is_404_naming_the_field(api: Api, tenant: Tenant, other: Tenant) -> None:
    api.add_whatsapp(other, "pn_theirs")
    agent = _agent_without_channel(api, tenant)

    response = api.client.patch(
        f"/users/{tenant.user_id}/agents/{agent['agent_id']}",
        json={"phone_number_id": "pn_theirs"},
        headers=tenant.headers,
    )

    _error(response, 404, "not_found", field="phone_number_id")


def test_patch_with_a_bad_prompt_id_or_a_null_name_is_422(api: Api, tenant: Tenant) -> None:
    agent = _agent_without_channel(api, tenant)
    url = f"/users/{tenant.user_id}/agents/{agent['agent_id']}"

    _error(
        api.client.patch(url, json={"prompt_id": "asst_1"}, headers=tenant.headers),
        422,
        "validation_failed",
        "prompt_id",
    )
    _error(api.client.patch(url, json={"name": None}, headers=tenant.headers), 422, "validation_failed", "name")
    _error(api.client.patch(url, json={"name": "a\u0000b"}, headers=tenant.headers), 422, "validation_failed", "name")
    _error(api.client.patch(url, json={"name": 7}, headers=tenant.headers), 422, "validation_failed", "name")


def test_another_tenants_agent_is_404_on_every_verb(api: Api, tenant: Tenant, other: Tenant) -> None:
    theirs = _agent_without_channel(api, other)
    url = f"/users/{tenant.user_id}/agents/{theirs['agent_id']}"

    _error(api.client.get(url, headers=tenant.headers), 404, "not_found")
    _error(api.client.patch(url, json={"name": "Mine"}, headers=tenant.headers), 404, "not_found")
    _error(api.client.delete(url, headers=tenant.headers), 404, "not_found")
    still = api.client.get(f"/users/{other.user_id}/agents/{theirs['agent_id']}", headers=other.headers)
    assert _json(still)["name"] == "Support"


def test_delete_agent_is_204_then_404(api: Api, tenant: Tenant) -> None:
    agent = _agent_without_channel(api, tenant)
    url = f"/users/{tenant.user_id}/agents/{agent['agent_id']}"

    deleted = api.client.delete(url, headers=tenant.headers)

    assert deleted.status_code == 204 and deleted.data == b""
    _error(api.client.get(url, headers=tenant.headers), 404, "not_found")
    _error(api.client.patch(url, json={"name": "Back"}, headers=tenant.headers), 404, "not_found")
    _error(api.client.delete(url, headers=tenant.headers), 404, "not_found")
    assert _json(api.client.get(f"/users/{tenant.user_id}/agents", headers=tenant.headers)) == {"agents": []}


def test_delete_channel_is_204_unlinks_its_agent_and_hides_it(api: Api, tenant: Tenant, other: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    agent = api.create_agent(tenant, "pn_1")
    url = f"/users/{tenant.user_id}/phone_numbers/pn_1"

    _error(api.client.delete(f"/users/{other.user_id}/phone_numbers/pn_1", headers=other.headers), 404, "not_found")
    deleted = api.client.delete(url, headers=tenant.headers)

    assert deleted.status_code == 204
    _error(api.client.delete(url, headers=tenant.headers), 404, "not_found")
    listed = api.client.get(f"/users/{tenant.user_id}/phone_numbers", headers=tenant.headers)
    assert _json(listed) == {"phone_numbers": []}
    fetched = api.client.get(f"/users/{tenant.user_id}/agents/{agent['agent_id']}", headers=tenant.headers)
    assert _json(fetched)["phone_number_id"] is None
    relink = api.client.patch(
        f"/users/{tenant.user_id}/agents/{agent['agent_id']}", json={"phone_number_id": "pn_1"}, headers=tenant.headers
    )
    _error(relink, 404, "not_found", field="phone_number_id")
