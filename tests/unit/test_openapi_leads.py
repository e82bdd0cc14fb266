"""The OpenAPI document of the leads, notifications and the outgoing webhook: what the routes read and
refuse, and what they answer, is what the document says — and a webhook's secret is in no schema but the
two answers that show it once."""

from __future__ import annotations

from typing import Any

import pytest

from domain.channels import ChannelType
from domain.extraction import FIELDS, SCORE_FIELDS, TEXT_FIELDS
from domain.notifications import NotificationKind
from domain.webhooks import DeliveryStatus
from entrypoints.http.api.extractions import SCORE_FILTERS
from entrypoints.http.openapi import openapi_document
from entrypoints.settings import Settings


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(Settings.from_env({}, dev=True))


def _parameters(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return {p["name"]: p for p in document["paths"][path][method]["parameters"] if "name" in p}


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def test_the_lead_filters_are_the_ones_the_route_reads(document: dict[str, Any]) -> None:
    listing = _parameters(document, "/users/{user_id}/extractions")

    assert set(listing) == {
        "user_id",
        "channel",
        "phone_number_id",
        *SCORE_FILTERS,
        "has_demo",
        "since",
        "until",
        "cursor",
    }
    assert tuple(f"min_{score}" for score in SCORE_FIELDS) == SCORE_FILTERS
    assert listing["channel"]["schema"]["enum"] == [kind.value for kind in ChannelType]
    assert all(listing[name]["schema"] == {"type": "integer", "minimum": 1, "maximum": 3} for name in SCORE_FILTERS)
    assert listing["has_demo"]["schema"]["enum"] == ["true", "false"]
    history = _parameters(document, "/users/{user_id}/conversations/{conversation_id}/extractions")
    assert set(history) == {"user_id", "conversation_id", "cursor"}


def test_a_lead_carries_every_field_the_ai_is_asked_for(document: dict[str, Any]) -> None:
    lead = _schemas(document)["Extraction"]

    assert set(FIELDS) <= set(lead["required"])
    assert lead["additionalProperties"] is False
    for name, longest in TEXT_FIELDS.items():
        assert lead["properties"][name]["maxLength"] == longest
    assert lead["properties"]["missing"]["propertyNames"] == {"enum": list(FIELDS)}
    assert lead["properties"]["demo_datetime"]["format"] == "date-time"


def test_the_notification_filters_and_kinds_are_the_domains(document: dict[str, Any]) -> None:
    listing = _parameters(document, "/users/{user_id}/notifications")

    assert set(listing) == {"user_id", "kind", "read", "conversation_id", "since", "until", "cursor"}
    kinds = [kind.value for kind in NotificationKind]
    assert listing["kind"]["schema"]["enum"] == kinds
    assert _schemas(document)["Notification"]["properties"]["kind"]["enum"] == kinds
    assert all(f"`{kind}`" in listing["kind"]["description"] for kind in kinds)
    assert listing["cursor"]["schema"]["type"] == "string"


def test_the_settings_name_every_score(document: dict[str, Any]) -> None:
    shown = _schemas(document)["NotificationSettings"]["properties"]["hot_lead"]
    changed = _schemas(document)["NotificationSettingsRequest"]["properties"]["hot_lead"]

    assert list(shown["properties"]) == list(SCORE_FIELDS) == list(changed["properties"])
    assert shown["required"] == list(SCORE_FIELDS)


def test_the_secret_is_only_in_the_answers_that_make_it(document: dict[str, Any]) -> None:
    schemas = _schemas(document)
    webhook = document["paths"]["/users/{user_id}/webhook"]
    with_secret = {"$ref": "#/components/schemas/WebhookWithSecret"}

    assert "secret" not in schemas["Webhook"]["properties"]
    assert schemas["Webhook"]["additionalProperties"] is False
    assert "secret" in schemas["WebhookWithSecret"]["required"]
    assert webhook["put"]["responses"]["201"]["content"]["application/json"]["schema"] == with_secret
    assert webhook["put"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Webhook")
    assert webhook["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Webhook")
    rotated = document["paths"]["/users/{user_id}/webhook/rotate-secret"]["post"]["responses"]["200"]
    assert rotated["content"]["application/json"]["schema"] == with_secret


def test_the_delivery_log_filters_are_the_ones_the_route_reads(document: dict[str, Any]) -> None:
    listing = _parameters(document, "/users/{user_id}/webhook/deliveries")

    assert set(listing) == {"user_id", "status", "notification_id", "cursor"}
    assert listing["status"]["schema"]["enum"] == [status.value for status in DeliveryStatus]


def test_an_agent_documents_its_extraction_prompt(document: dict[str, Any]) -> None:
    schemas = _schemas(document)

    assert schemas["Agent"]["properties"]["extraction_prompt_id"]["type"] == ["string", "null"]
    assert "extraction_prompt_id" in schemas["CreateAgentRequest"]["properties"]
    assert "extraction_prompt_id" not in schemas["CreateAgentRequest"]["required"]
    assert "extraction_prompt_id" in schemas["UpdateAgentRequest"]["properties"]
