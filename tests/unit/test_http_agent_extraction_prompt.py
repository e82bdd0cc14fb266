"""An agent's extraction prompt through the REST API: given at creation, changed or cleared by PATCH, shown by
every read, and checked like the other prompt ids (embedded container)."""

from __future__ import annotations

from typing import Any

import pytest

from domain import limits
from tests.unit.test_http_api import Api, Tenant, _error, _json


def _create(api: Api, tenant: Tenant, **extra: object) -> dict[str, Any]:
    body = {"name": "Sales", "prompt_id": "pmpt_sales", **extra}
    response = api.client.post(f"/users/{tenant.user_id}/agents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.json
    return _json(response)


def test_an_agent_created_without_one_reads_leads_with_the_built_in_instructions(api: Api, tenant: Tenant) -> None:
    agent = _create(api, tenant)

    assert agent["extraction_prompt_id"] is None


def test_an_agent_created_with_one_shows_it_on_every_read(api: Api, tenant: Tenant) -> None:
    agent = _create(api, tenant, extraction_prompt_id=" pmpt_leads ")
    url = f"/users/{tenant.user_id}/agents"

    fetched = _json(api.client.get(f"{url}/{agent['agent_id']}", headers=tenant.headers))
    listed = _json(api.client.get(url, headers=tenant.headers))["agents"]

    assert agent["extraction_prompt_id"] == "pmpt_leads"
    assert fetched == agent
    assert listed == [agent]


def test_patch_sets_keeps_and_clears_the_extraction_prompt(api: Api, tenant: Tenant) -> None:
    agent = _create(api, tenant)
    url = f"/users/{tenant.user_id}/agents/{agent['agent_id']}"

    set_ = _json(api.client.patch(url, json={"extraction_prompt_id": "pmpt_leads"}, headers=tenant.headers))
    renamed = _json(api.client.patch(url, json={"name": "Sales EU"}, headers=tenant.headers))
    cleared = _json(api.client.patch(url, json={"extraction_prompt_id": None}, headers=tenant.headers))
    again = _json(api.client.patch(url, json={"extraction_prompt_id": "pmpt_x"}, headers=tenant.headers))
    emptied = _json(api.client.patch(url, json={"extraction_prompt_id": ""}, headers=tenant.headers))

    assert set_["extraction_prompt_id"] == "pmpt_leads"
    assert (renamed["name"], renamed["extraction_prompt_id"]) == ("Sales EU", "pmpt_leads")
    assert cleared["extraction_prompt_id"] is None
    assert again["extraction_prompt_id"] == "pmpt_x"
    assert emptied["extraction_prompt_id"] is None
    assert _json(api.client.get(url, headers=tenant.headers))["extraction_prompt_id"] is None


@pytest.mark.parametrize(
    "value", ["gpt-4.1", 42, "pmpt_" + "x" * limits.PROMPT_ID, "pmpt_\x00"], ids=["not-pmpt", "number", "long", "nul"]
)
def test_a_bad_extraction_prompt_id_is_422_naming_it(api: Api, tenant: Tenant, value: object) -> None:
    created = api.client.post(
        f"/users/{tenant.user_id}/agents",
        json={"name": "Sales", "prompt_id": "pmpt_sales", "extraction_prompt_id": value},
        headers=tenant.headers,
    )
    agent = _create(api, tenant)
    patched = api.client.patch(
        f"/users/{tenant.user_id}/agents/{agent['agent_id']}",
        json={"extraction_prompt_id": value},
        headers=tenant.headers,
    )

    _error(created, 422, "validation_failed", field="extraction_prompt_id")
    _error(patched, 422, "validation_failed", field="extraction_prompt_id")
    assert _json(api.client.get(f"/users/{tenant.user_id}/agents", headers=tenant.headers))["agents"] == [agent]
