"""The OpenAPI document of the relink and hand-off routes: every one documented, path items merged
method by method, the PATCH bodies as the code reads them, 204s without a body, the message's sender."""

from __future__ import annotations

from typing import Any

import pytest

from domain.messages import MessageStatus, Sender
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.http.openapi import merge_paths, openapi_document
from entrypoints.settings import Settings
from tests.support.contract import Contract, app_operations, documented_operations

_OURS = {
    ("GET", "/users/{user_id}/agents/{agent_id}"),
    ("PATCH", "/users/{user_id}/agents/{agent_id}"),
    ("DELETE", "/users/{user_id}/agents/{agent_id}"),
    ("PATCH", "/users/{user_id}/phone_numbers/{phone_number_id}"),
    ("DELETE", "/users/{user_id}/phone_numbers/{phone_number_id}"),
    ("PATCH", "/users/{user_id}/conversations/{conversation_id}"),
    ("POST", "/users/{user_id}/conversations/{conversation_id}/messages"),
}


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(Settings.from_env({}, dev=True))


def test_the_relink_and_hand_off_routes_are_routes_and_documented(document: dict[str, Any]) -> None:
    app = create_app(build_container(Settings.from_env({}, dev=True)))
    assert app_operations(app) >= _OURS
    assert documented_operations(document) >= _OURS


def test_two_modules_may_document_different_methods_of_one_path() -> None:
    paths: dict[str, Any] = {}
    merge_paths(paths, {"/things/{id}": {"get": {"operationId": "get_thing"}}})
    merge_paths(paths, {"/things/{id}": {"patch": {"operationId": "update_thing"}}, "/other": {"get": {}}})
    assert paths == {
        "/things/{id}": {"get": {"operationId": "get_thing"}, "patch": {"operationId": "update_thing"}},
        "/other": {"get": {}},
    }


def test_the_same_method_of_a_path_documented_twice_is_an_error() -> None:
    paths: dict[str, Any] = {}
    first = {"/things/{id}": {"get": {"operationId": "get_thing"}}}
    merge_paths(paths, first)
    with pytest.raises(ValueError, match=r"GET /things/\{id\} is described twice"):
        merge_paths(paths, {"/things/{id}": {"get": {"operationId": "again"}}})
    assert first == {"/things/{id}": {"get": {"operationId": "get_thing"}}}  # the module's own is untouched


def test_patch_bodies_require_nothing_and_say_what_may_be_null(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    agent = schemas["UpdateAgentRequest"]
    assert agent["required"] == []
    assert agent["properties"]["name"]["type"] == "string"  # never null
    assert agent["properties"]["prompt_id"]["type"] == "string"
    assert agent["properties"]["phone_number_id"]["type"] == ["string", "null"]  # null unlinks
    assert agent["properties"]["prompt_version"]["type"] == ["string", "null"]
    channel = schemas["UpdateChannelRequest"]
    assert channel["required"] == []
    assert channel["properties"]["bot"]["enum"] == ["active", "paused", None]
    conversation = schemas["UpdateConversationRequest"]
    assert conversation["required"] == ["bot"]
    assert conversation["properties"]["resume_after_minutes"]["minimum"] == 1


def test_agents_and_channels_answered_as_the_api_writes_them(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Agent"]["properties"]["phone_number_id"]["type"] == ["string", "null"]
    assert schemas["Channel"]["properties"]["bot"]["enum"] == ["active", "paused"]
    assert "bot" in schemas["Conversation"]["required"]
    assert "openai_last_item_id" not in schemas["Conversation"]["properties"]


def test_the_message_says_who_wrote_it_and_may_be_held(document: dict[str, Any]) -> None:
    message = document["components"]["schemas"]["Message"]
    assert message["properties"]["sender"]["enum"] == [sender.value for sender in Sender]
    assert "sender" in message["required"]
    assert MessageStatus.HELD.value in message["properties"]["status"]["enum"]


def test_a_persons_reply_documents_its_replay_and_the_channel_refusal(document: dict[str, Any]) -> None:
    responses = document["paths"]["/users/{user_id}/conversations/{conversation_id}/messages"]["post"]["responses"]
    assert {"200", "201", "404", "409", "422", "502"} <= set(responses)
    contract = Contract(document)
    refused = (
        b'{"error": {"code": "channel_refused", "message": "m", "field": null, "correlation_id": "c",'
        b' "timestamp": "2026-01-01T00:00:00+00:00", "message_id": 7}}'
    )
    path = "/users/usr_1/conversations/3/messages"
    assert contract.problems("POST", path, 502, "application/json", ("x-correlation-id",), refused) == []


def test_deletes_answer_204_without_a_body(document: dict[str, Any]) -> None:
    contract = Contract(document)
    for path in ("/users/usr_1/agents/agt_1", "/users/usr_1/phone_numbers/106540352242001"):
        assert contract.problems("DELETE", path, 204, None, ("x-correlation-id",), b"") == []
        (problem,) = contract.problems("DELETE", path, 204, "application/json", ("x-correlation-id",), b"{}")
        assert "with a body, where none is documented" in problem
