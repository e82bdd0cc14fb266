"""The OpenAPI document of the listings (conversations, ledger pages, the messages' direction) and of the
retry: what the code reads and refuses is what the document says."""

from __future__ import annotations

from typing import Any

import pytest

from domain import conversations, messages, turns
from domain.messages import Direction
from entrypoints.http.api.conversations import _STATES
from entrypoints.http.openapi import openapi_document
from entrypoints.settings import Settings


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(Settings.from_env({}, dev=True))


def _parameters(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return {p["name"]: p for p in document["paths"][path][method]["parameters"] if "name" in p}


def test_every_code_a_retry_is_refused_with_is_documented_on_its_409(document: dict[str, Any]) -> None:
    refused = document["paths"]["/users/{user_id}/messages/{message_id}/retry"]["post"]["responses"]["409"]
    codes = {
        *conversations._RETRY_REFUSALS,
        conversations.CONVERSATION_ARCHIVED,
        messages.NOT_RETRYABLE,
        turns.CHANNEL_UNAVAILABLE,
    }
    assert all(f"`{code}`" in refused["description"] for code in codes)
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_filters_are_the_ones_the_routes_read(document: dict[str, Any]) -> None:
    listing = _parameters(document, "/users/{user_id}/conversations")
    assert set(listing) == {"user_id", "phone_number_id", "customer_id", "state", "bot", "cursor"}
    assert listing["state"]["schema"]["enum"] == list(_STATES)
    assert listing["cursor"]["schema"]["type"] == "string"  # opaque, unlike the integer cursors
    direction = _parameters(document, "/users/{user_id}/messages")["direction"]
    assert direction["schema"]["enum"] == [member.value for member in Direction]
    ledger = _parameters(document, "/users/{user_id}/credits/ledger")
    assert ledger["cursor"]["schema"] == {"type": "integer", "minimum": 1}


def test_a_conversation_shows_no_internal_field(document: dict[str, Any]) -> None:
    shown = document["components"]["schemas"]["Conversation"]["properties"]
    assert "openai_last_item_id" not in shown
    assert "user_id" not in shown
    assert "openai_conversation_id" in shown


def test_the_balance_says_where_the_ledger_continues(document: dict[str, Any]) -> None:
    credits = document["components"]["schemas"]["Credits"]
    assert "ledger_next_cursor" in credits["required"]
    assert credits["properties"]["ledger_next_cursor"]["type"] == ["integer", "null"]
