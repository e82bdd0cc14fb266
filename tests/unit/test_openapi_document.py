"""The OpenAPI document: valid 3.1, served without a key, the same routes as the app, truthful bounds —
and the checker that every test's responses go through."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate

from domain import limits
from domain.channels import ChannelType
from domain.messages import MessageStatus
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.http.openapi import openapi_document
from entrypoints.settings import Settings
from tests.support.contract import Contract, ContractViolation, route_differences


def _app(env: dict[str, str] | None = None) -> Flask:
    return create_app(build_container(Settings.from_env(env or {}, dev=True)))


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(Settings.from_env({}, dev=True))


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_the_document_is_served_without_an_api_key(document: dict[str, Any]) -> None:
    answer = _app().test_client().get("/openapi.json")
    assert answer.status_code == 200
    assert answer.get_json() == document


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    differences = route_differences(_app(), openapi_document(Settings.from_env({}, dev=True)))
    assert differences == "", "the app's routes and GET /openapi.json differ:\n" + differences


def test_an_undocumented_route_is_named_exactly() -> None:
    app = _app()
    app.add_url_rule("/users/<id:user_id>/widgets", "widgets", lambda user_id: "", methods=["GET", "POST"])
    differences = route_differences(app, openapi_document(Settings.from_env({}, dev=True)))
    assert differences.splitlines() == [
        "  undocumented route: GET /users/{user_id}/widgets",
        "  undocumented route: POST /users/{user_id}/widgets",
    ]


def test_configured_header_names_and_webhook_path_are_the_documented_ones() -> None:
    env = {"API_KEY_HEADER": "x-shop-key", "CORRELATION_ID_HEADER": "x-request-id", "WEBHOOK_PATH": "/hooks/meta"}
    document = openapi_document(Settings.from_env(env, dev=True))
    assert document["components"]["securitySchemes"]["ApiKey"]["name"] == "x-shop-key"
    assert document["components"]["parameters"]["CorrelationId"]["name"] == "x-request-id"
    assert "x-request-id" in document["paths"]["/users"]["post"]["responses"]["201"]["headers"]
    assert "/hooks/meta" in document["paths"]
    assert route_differences(_app(env), document) == ""


def test_one_settings_header_name_does_not_leak_into_another_document() -> None:
    default = Settings.from_env({}, dev=True)
    custom = Settings.from_env({"CORRELATION_ID_HEADER": "x-request-id"}, dev=True)
    first, _, again = openapi_document(default), openapi_document(custom), openapi_document(default)
    assert first == again
    assert "x-correlation-id" in again["paths"]["/health"]["get"]["responses"]["200"]["headers"]


def test_bodies_carry_the_domain_bounds_and_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    agent = schemas["CreateAgentRequest"]
    assert agent["properties"]["name"]["maxLength"] == limits.AGENT_NAME
    assert agent["properties"]["prompt_id"]["maxLength"] == limits.PROMPT_ID
    assert set(agent["required"]) == {"name", "prompt_id"}  # an agent may be created on no channel
    assert schemas["AddChannelRequest"]["properties"]["type"]["enum"] == [kind.value for kind in ChannelType]
    assert schemas["Message"]["properties"]["status"]["enum"] == [status.value for status in MessageStatus]
    assert "api_key_hash" not in schemas["User"]["properties"]


def test_every_api_operation_documents_the_key_errors(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation["security"]:
                assert {"401", "404", "503"} <= set(operation["responses"]), f"{method} {path}"


# --- the checker -------------------------------------------------------------------------------------


def _problems(
    contract: Contract, status: int, body: bytes, headers: tuple[str, ...] = ("x-correlation-id",)
) -> list[str]:
    return contract.problems("GET", "/users/usr_1", status, "application/json", headers, body)


def test_the_checker_names_an_undocumented_status(document: dict[str, Any]) -> None:
    (problem,) = _problems(Contract(document), 409, b"{}")
    assert problem.startswith("GET /users/{user_id} answered 409, a status the document does not list")


def test_the_checker_names_a_field_the_document_does_not_have(document: dict[str, Any]) -> None:
    user = {"user_id": "u", "email": "a@b.co", "company_name": None, "created_at": "2025-01-01T00:00:00Z"}
    body = json.dumps({**user, "api_key_hash": "x"}).encode()
    (problem,) = _problems(Contract(document), 200, body)
    assert "'api_key_hash' was unexpected" in problem


def test_the_checker_names_a_missing_header_and_a_wrong_error_body(document: dict[str, Any]) -> None:
    problems = _problems(Contract(document), 404, b'{"error": {"code": "not_found"}}', headers=())
    assert any("without its required header x-correlation-id" in problem for problem in problems)
    assert any("'message' is a required property" in problem for problem in problems)


def test_paths_the_document_does_not_have_are_left_to_the_route_check(document: dict[str, Any]) -> None:
    assert Contract(document).problems("GET", "/nowhere", 404, "application/json", (), b"{}") == []


def test_every_test_client_checks_its_responses(document: dict[str, Any]) -> None:
    client = _app().test_client()
    stricter = copy.deepcopy(document)
    stricter["components"]["schemas"]["Health"]["properties"]["status"]["enum"] = ["fine"]
    client.application.extensions["openapi_contract"] = Contract(stricter)
    with pytest.raises(ContractViolation, match="GET /health answered 200"):
        client.get("/health")
