"""PATCH of a phone number and of a conversation through the API, on the embedded container."""

from __future__ import annotations

from typing import Any

import pytest

from application.ports.services import DeliveryFailed
from tests.unit.test_http_api import ACCESS_TOKEN, Api, Tenant, _error, _json


def _conversation(api: Api, tenant: Tenant) -> int:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    api.receive("pn_1", "15550001")
    body = _json(api.client.get(f"/users/{tenant.user_id}/messages", headers=tenant.headers))
    conversation_id: int = body["messages"][0]["conversation_id"]
    return conversation_id


def _patch(api: Api, tenant: Tenant, path: str, body: Any) -> Any:
    return api.client.patch(f"/users/{tenant.user_id}/{path}", json=body, headers=tenant.headers)


ROTATED = {"display_name": "Front desk", "access_token": "EAAG-rotated-0987654321", "bot": "paused"}


def test_a_phone_number_is_renamed_its_token_rotated_and_its_bot_paused(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")

    response = _patch(
        api,
        tenant,
        "phone_numbers/pn_1",
        ROTATED,
    )

    body = _json(response)
    assert response.status_code == 200
    assert (body["display_name"], body["bot"], body["access_token"]) == ("Front desk", "paused", "…4321")
    assert "EAAG-rotated-0987654321" not in response.get_data(as_text=True)
    listed = _json(api.client.get(f"/users/{tenant.user_id}/phone_numbers", headers=tenant.headers))
    assert listed["phone_numbers"] == [body]
    assert api.container.routes().find("pn_1").channel.access_token == "EAAG-rotated-0987654321"


def test_a_phone_number_patch_with_nothing_changes_nothing(api: Api, tenant: Tenant) -> None:
    created = api.add_whatsapp(tenant, "pn_1")

    assert _json(_patch(api, tenant, "phone_numbers/pn_1", {})) == created
    assert ACCESS_TOKEN not in str(created)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bot": "sleeping"}, "bot"),
        ({"access_token": "  "}, "access_token"),
        ({"display_name": "x" * 201}, "display_name"),
    ],
)
def test_a_bad_phone_number_patch_is_422_naming_the_field(api: Api, tenant: Tenant, body: Any, field: str) -> None:
    api.add_whatsapp(tenant, "pn_1")

    _error(_patch(api, tenant, "phone_numbers/pn_1", body), 422, "validation_failed", field=field)


def test_another_tenants_phone_number_is_404(api: Api, tenant: Tenant, other: Tenant) -> None:
    api.add_whatsapp(other, "pn_1")

    _error(_patch(api, tenant, "phone_numbers/pn_1", {"bot": "paused"}), 404, "not_found")
    _error(
        api.client.patch(f"/users/{other.user_id}/phone_numbers/pn_1", json={}, headers=tenant.headers),
        404,
        "not_found",
    )


def test_a_conversation_is_paused_for_a_while_and_resumed(api: Api, tenant: Tenant) -> None:
    conversation_id = _conversation(api, tenant)

    paused = _json(
        _patch(api, tenant, f"conversations/{conversation_id}", {"bot": "paused", "resume_after_minutes": 30})
    )
    resumed = _json(_patch(api, tenant, f"conversations/{conversation_id}", {"bot": "active"}))

    assert {"bot", "bot_paused_until", "conversation_id", "is_active"} <= set(paused)
    assert (paused["conversation_id"], paused["bot"], paused["is_active"]) == (conversation_id, "paused", True)
    assert paused["bot_paused_until"] is not None
    assert (resumed["bot"], resumed["bot_paused_until"]) == ("active", None)


@pytest.mark.parametrize(
    "body",
    [
        {"bot": "paused", "resume_after_minutes": 0},
        {"bot": "active", "resume_after_minutes": 5},
        {"bot": "paused", "resume_after_minutes": "5"},
    ],
)
def test_a_bad_resume_time_is_422_naming_it(api: Api, tenant: Tenant, body: Any) -> None:
    conversation_id = _conversation(api, tenant)

    _error(
        _patch(api, tenant, f"conversations/{conversation_id}", body), 422, "validation_failed", "resume_after_minutes"
    )


def test_a_conversation_patch_without_bot_is_422(api: Api, tenant: Tenant) -> None:
    conversation_id = _conversation(api, tenant)

    _error(_patch(api, tenant, f"conversations/{conversation_id}", {}), 422, "validation_failed", "bot")


@pytest.mark.parametrize("path", ["conversations/999", "conversations/abc"])
def test_a_missing_conversation_is_404(api: Api, tenant: Tenant, path: str) -> None:
    _error(_patch(api, tenant, path, {"bot": "paused"}), 404, "not_found")


def test_another_tenants_conversation_is_404(api: Api, tenant: Tenant, other: Tenant) -> None:
    conversation_id = _conversation(api, other)

    _error(_patch(api, tenant, f"conversations/{conversation_id}", {"bot": "paused"}), 404, "not_found")


def _send(api: Api, tenant: Tenant, conversation_id: int, body: Any, key: str | None = None) -> Any:
    headers = {**tenant.headers, **({"Idempotency-Key": key} if key else {})}
    path = f"/users/{tenant.user_id}/conversations/{conversation_id}/messages"
    return api.client.post(path, json=body, headers=headers)


def test_a_human_reply_is_201_with_its_parts_shown_as_human_and_replayed_by_its_key(api: Api, tenant: Tenant) -> None:
    conversation_id = _conversation(api, tenant)

    first = _send(api, tenant, conversation_id, {"text": "Hi, Ana from the team here."}, key="k-1")
    again = _send(api, tenant, conversation_id, {"text": "Hi, Ana from the team here."}, key="k-1")

    assert first.status_code == 201
    assert again.status_code == 200
    [part] = _json(first)["messages"]
    assert (part["sender"], part["direction"], part["status"]) == ("human", "outbound", "sent")
    assert _json(again) == _json(first)
    listed = _json(api.client.get(f"/users/{tenant.user_id}/messages", headers=tenant.headers))["messages"]
    assert [m["sender"] for m in listed] == ["human", "customer"]
    assert len(api.container.recording_sender().sent) == 1


def test_a_human_reply_outside_the_service_window_is_409_and_stores_nothing(api: Api, tenant: Tenant) -> None:
    conversation_id = _conversation(api, tenant)
    api.clock.advance(hours=25)

    _error(_send(api, tenant, conversation_id, {"text": "hello?"}), 409, "outside_service_window")

    listed = _json(api.client.get(f"/users/{tenant.user_id}/messages", headers=tenant.headers))["messages"]
    assert [m["sender"] for m in listed] == ["customer"]


def test_a_human_reply_the_channel_refuses_is_502_naming_the_stored_message(api: Api, tenant: Tenant) -> None:
    conversation_id = _conversation(api, tenant)
    api.container.recording_sender().failures.append(DeliveryFailed("Re-engagement message", code="131047"))

    answer = _send(api, tenant, conversation_id, {"text": "hello?"})

    assert answer.status_code == 502
    error = _json(answer)["error"]
    assert error["code"] == "channel_refused"
    listed = _json(api.client.get(f"/users/{tenant.user_id}/messages", headers=tenant.headers))["messages"]
    assert (listed[0]["message_id"], listed[0]["status"], listed[0]["failure_code"]) == (
        error["message_id"],
        "failed",
        "131047",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": "x" * 16_385}, "text"),
        ({"text": "a\u0000b"}, "text"),
        ({"text": "hi", "pause": "no"}, "pause"),
    ],
)
def test_a_bad_human_reply_is_422_naming_the_field(api: Api, tenant: Tenant, body: Any, field: str) -> None:
    conversation_id = _conversation(api, tenant)

    _error(_send(api, tenant, conversation_id, body), 422, "validation_failed", field)
