"""The listings (conversations, message direction, ledger pages) and the retry of a failed message,
through Flask's test client on the embedded (in-memory) container."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from attrs import evolve

from application.ports.services import DeliveryFailed
from application.use_cases.handle_inbound_message import HandleInbound
from application.use_cases.process_pending_messages import ProcessScope
from domain.messages import Direction, InboundMessage, Message, MessageStatus
from tests.unit.test_http_api import Api, Tenant, _error, _json

CONVERSATION_KEYS = {
    "bot",
    "bot_paused_until",
    "conversation_id",
    "phone_number_id",
    "agent_id",
    "customer_id",
    "customer_name",
    "is_active",
    "openai_conversation_id",
    "created_at",
    "last_message_at",
    "last_customer_message_at",
    "last_sequence_no",
}


@pytest.fixture
def chatty(api: Api, tenant: Tenant, other: Tenant) -> Tenant:
    """`tenant` with two channels and four conversations; `other` with one of its own."""
    for phone_number_id in ("pn_1", "pn_2"):
        api.add_whatsapp(tenant, phone_number_id)
        api.create_agent(tenant, phone_number_id)
    api.add_whatsapp(other, "pn_other")
    api.create_agent(other, "pn_other")
    topped = api.client.post(f"/users/{tenant.user_id}/credits", json={"amount": 100}, headers=api.admin)
    assert topped.status_code == 201
    api.receive("pn_1", "alice", "hi")  # 12:01
    api.receive("pn_1", "bob", "hello")  # 12:02
    api.receive("pn_2", "carol", "open today?")  # 12:03
    api.receive("pn_other", "dave", "not yours")  # 12:04
    api.receive("pn_1", "alice", "price?")  # 12:05
    api.receive("pn_2", "alice", "and here?")  # 12:06
    return tenant


def _get(api: Api, tenant: Tenant, path: str, **params: object) -> dict[str, Any]:
    response = api.client.get(f"/users/{tenant.user_id}{path}", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return _json(response)


def _who(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["phone_number_id"], c["customer_id"]) for c in page["conversations"]]


def _store(api: Api) -> Any:
    return api.container.memory_store().tables


def _archive(api: Api, conversation_id: int) -> None:
    tables = _store(api)
    tables.conversations[conversation_id] = tables.conversations[conversation_id].archive()


# --- conversations -----------------------------------------------------------------------------


def test_conversations_are_listed_by_newest_activity_without_other_tenants(api: Api, chatty: Tenant) -> None:
    page = _get(api, chatty, "/conversations")

    assert _who(page) == [("pn_2", "alice"), ("pn_1", "alice"), ("pn_2", "carol"), ("pn_1", "bob")]
    assert page["next_cursor"] is None
    first = page["conversations"][1]
    assert set(first) == CONVERSATION_KEYS
    assert (first["is_active"], first["last_sequence_no"]) == (True, 2)
    assert datetime.fromisoformat(first["last_message_at"]) == datetime.fromisoformat("2026-01-01T12:05:00+00:00")
    assert datetime.fromisoformat(first["created_at"]) == datetime.fromisoformat("2026-01-01T12:01:00+00:00")
    assert first["last_customer_message_at"] is not None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"phone_number_id": "pn_1"}, [("pn_1", "alice"), ("pn_1", "bob")]),
        ({"customer_id": "alice"}, [("pn_2", "alice"), ("pn_1", "alice")]),
        ({"customer_id": "alice", "phone_number_id": "pn_1"}, [("pn_1", "alice")]),
        ({"state": "active", "phone_number_id": "pn_1"}, [("pn_1", "alice")]),
        ({"state": "archived"}, [("pn_1", "bob")]),
        ({"state": "archived", "customer_id": "alice"}, []),
        ({"phone_number_id": "pn_other"}, []),
    ],
)
def test_conversation_filters_combine(
    api: Api, chatty: Tenant, params: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    bob = _get(api, chatty, "/conversations", customer_id="bob")["conversations"][0]["conversation_id"]
    _archive(api, bob)

    assert _who(_get(api, chatty, "/conversations", **params)) == expected


def test_conversations_a_person_has_taken_over_are_listed_with_bot_paused(api: Api, chatty: Tenant) -> None:
    carol = _get(api, chatty, "/conversations", customer_id="carol")["conversations"][0]["conversation_id"]
    paused = api.client.patch(
        f"/users/{chatty.user_id}/conversations/{carol}", json={"bot": "paused"}, headers=chatty.headers
    )
    assert paused.status_code == 200

    assert _who(_get(api, chatty, "/conversations", bot="paused")) == [("pn_2", "carol")]
    assert ("pn_2", "carol") not in _who(_get(api, chatty, "/conversations", bot="active"))
    _error(
        api.client.get(f"/users/{chatty.user_id}/conversations?bot=sleeping", headers=chatty.headers),
        422,
        "validation_failed",
        field="bot",
    )


def _receive_at_the_same_moment(api: Api, phone_number_id: str, customer: str) -> None:
    api.container.handle_inbound_message()(
        HandleInbound(
            InboundMessage(
                phone_number_id=phone_number_id,
                platform_message_id=f"wamid.same.{customer}",
                customer_id=customer,
                customer_name=None,
                content_type="text",
                text="hi",
                skip_reason=None,
                sent_at=api.clock.now(),
                raw={},
            )
        )
    )


def test_the_cursor_walks_every_conversation_once_even_when_activity_ties(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    for index in range(4):
        api.receive("pn_1", f"early{index}")
    api.clock.advance(minutes=1)
    for index in range(5):  # five conversations with the very same last activity
        _receive_at_the_same_moment(api, "pn_1", f"tied{index}")
    api.receive("pn_1", "late")

    seen: list[int] = []
    activity: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        pages += 1
        params: dict[str, object] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = _get(api, tenant, "/conversations", **params)
        seen += [c["conversation_id"] for c in page["conversations"]]
        activity += [c["last_message_at"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 4
    assert len(seen) == len(set(seen)) == 10
    keys = [(datetime.fromisoformat(at), conversation_id) for at, conversation_id in zip(activity, seen, strict=True)]
    assert keys == sorted(keys, reverse=True)


def test_the_default_page_holds_fifty_conversations(api: Api, tenant: Tenant) -> None:
    api.add_whatsapp(tenant, "pn_1")
    api.create_agent(tenant, "pn_1")
    for index in range(51):
        api.receive("pn_1", f"customer{index}")

    page = _get(api, tenant, "/conversations")

    assert len(page["conversations"]) == 50
    assert isinstance(page["next_cursor"], str)
    assert _who(_get(api, tenant, "/conversations", cursor=page["next_cursor"])) == [("pn_1", "customer0")]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"state": "paused"}, "state"),
        ({"cursor": "12"}, "cursor"),
        ({"cursor": "abc.1"}, "cursor"),
        ({"cursor": "9" * 19 + ".1"}, "cursor"),
        ({"cursor": "１.1"}, "cursor"),
        ({"customer_id": " "}, "customer_id"),
        ({"customer_id": "a\x00b"}, "customer_id"),
        ({"phone_number_id": "p" * 65}, "phone_number_id"),
    ],
)
def test_bad_conversation_parameters_are_422_naming_the_parameter(
    api: Api, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/conversations", query_string=params, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=field)


def test_one_conversation_is_shown_to_its_tenant(api: Api, chatty: Tenant) -> None:
    listed = _get(api, chatty, "/conversations")["conversations"][0]

    assert _get(api, chatty, f"/conversations/{listed['conversation_id']}") == listed


def test_another_tenants_or_an_unknown_conversation_is_404(api: Api, chatty: Tenant, other: Tenant) -> None:
    theirs = _get(api, other, "/conversations")["conversations"][0]["conversation_id"]

    for conversation_id in (theirs, 999, "abc", "9" * 30):
        response = api.client.get(f"/users/{chatty.user_id}/conversations/{conversation_id}", headers=chatty.headers)
        _error(response, 404, "not_found")
    response = api.client.get(f"/users/{other.user_id}/conversations/{theirs}", headers=chatty.headers)
    _error(response, 404, "not_found")


def test_the_conversation_routes_need_the_api_key(api: Api, chatty: Tenant) -> None:
    for path in ("/conversations", "/conversations/1", "/credits/ledger"):
        _error(api.client.get(f"/users/{chatty.user_id}{path}"), 401, "unauthorized")
    _error(api.client.post(f"/users/{chatty.user_id}/messages/1/retry"), 401, "unauthorized")


def test_the_admin_sees_a_tenants_conversations(api: Api, chatty: Tenant) -> None:
    response = api.client.get(f"/users/{chatty.user_id}/conversations", headers=api.admin)

    assert response.status_code == 200
    assert len(_json(response)["conversations"]) == 4


# --- messages by direction ---------------------------------------------------------------------


def _answered(api: Api) -> None:
    """Everything pending answered by the (offline) responder, in the embedded worker's way."""
    queue = api.container.queue()
    while queue.jobs:
        api.container.process_pending_messages()(_scope_job(queue.jobs.popleft()))


def _scope_job(scope: str) -> ProcessScope:
    return ProcessScope(scope)


@pytest.mark.parametrize(("direction", "count"), [("inbound", 5), ("outbound", 4)])
def test_messages_are_filtered_by_direction(api: Api, chatty: Tenant, direction: str, count: int) -> None:
    api.clock.advance(minutes=1)
    _answered(api)

    page = _get(api, chatty, "/messages", direction=direction)

    # alice's two messages on pn_1 were answered in one turn: one reply per conversation.
    assert len(page["messages"]) == count
    assert {m["direction"] for m in page["messages"]} == {direction}


def test_the_direction_filter_combines_with_the_others(api: Api, chatty: Tenant) -> None:
    api.clock.advance(minutes=1)
    _answered(api)

    page = _get(api, chatty, "/messages", direction="outbound", customer="alice", phone_number_id="pn_1")

    assert [(m["direction"], m["phone_number_id"]) for m in page["messages"]] == [("outbound", "pn_1")]


def test_a_bad_direction_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/messages?direction=both", headers=tenant.headers)

    _error(response, 422, "validation_failed", field="direction")


# --- the ledger, page by page ------------------------------------------------------------------


def _top_ups(api: Api, tenant: Tenant, count: int) -> None:
    for index in range(count):
        response = api.client.post(
            f"/users/{tenant.user_id}/credits", json={"amount": index + 1, "reason": f"#{index}"}, headers=api.admin
        )
        assert response.status_code == 201


def test_the_credits_show_the_latest_twenty_entries_and_where_the_rest_are(api: Api, tenant: Tenant) -> None:
    _top_ups(api, tenant, 25)

    credits = _get(api, tenant, "/credits")
    older = _get(api, tenant, "/credits/ledger", cursor=credits["ledger_next_cursor"])

    assert [e["reason"] for e in credits["ledger"]] == [f"#{i}" for i in range(24, 4, -1)]
    assert [e["reason"] for e in older["entries"]] == [f"#{i}" for i in range(4, -1, -1)]
    assert older["next_cursor"] is None


def test_the_ledger_pages_hold_every_entry_once_newest_first(api: Api, tenant: Tenant) -> None:
    _top_ups(api, tenant, 12)

    seen: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        pages += 1
        params: dict[str, object] = {"limit": 5} if cursor is None else {"limit": 5, "cursor": cursor}
        page = _get(api, tenant, "/credits/ledger", **params)
        seen += [e["entry_id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 12


def test_a_short_ledger_says_there_is_nothing_more(api: Api, tenant: Tenant) -> None:
    _top_ups(api, tenant, 2)

    assert _get(api, tenant, "/credits")["ledger_next_cursor"] is None
    assert len(_get(api, tenant, "/credits/ledger")["entries"]) == 2


@pytest.mark.parametrize(("params", "field"), [({"limit": "0"}, "limit"), ({"cursor": "x"}, "cursor")])
def test_bad_ledger_parameters_are_422(api: Api, tenant: Tenant, params: dict[str, str], field: str) -> None:
    response = api.client.get(f"/users/{tenant.user_id}/credits/ledger", query_string=params, headers=tenant.headers)

    _error(response, 422, "validation_failed", field=field)


def test_another_tenants_ledger_is_404(api: Api, tenant: Tenant, other: Tenant) -> None:
    _error(api.client.get(f"/users/{other.user_id}/credits/ledger", headers=tenant.headers), 404, "not_found")


# --- retry -------------------------------------------------------------------------------------


def _message(api: Api, message_id: int) -> Message:
    message: Message = _store(api).messages[message_id]
    return message


def _failed_inbound(api: Api, chatty: Tenant) -> int:
    """alice's "price?" on pn_1, failed as if the AI had refused it."""
    found = _get(api, chatty, "/messages", customer="alice", phone_number_id="pn_1")["messages"][0]
    failed = evolve(_message(api, found["message_id"]), status=MessageStatus.FAILED, failure_reason="ai_failed: 400")
    _store(api).messages[failed.message_id] = failed
    api.container.queue().jobs.clear()
    return failed.message_id


def _failed_part(api: Api, chatty: Tenant) -> int:
    """The reply to alice on pn_1, refused by the channel with a code that is not safe to retry."""
    api.container.recording_sender().failures.append(DeliveryFailed("undeliverable", code="131026"))
    api.clock.advance(minutes=1)
    queue = api.container.queue()
    scope = next(job for job in queue.jobs if job == _scope_of(api, chatty, "pn_1", "alice"))
    queue.jobs.remove(scope)
    api.container.process_pending_messages()(_scope_job(scope))
    part = _get(api, chatty, "/messages", direction="outbound")["messages"][0]
    assert (part["status"], part["failure_code"]) == ("failed", "131026")
    return int(part["message_id"])


def _scope_of(api: Api, tenant: Tenant, phone_number_id: str, customer: str) -> str:
    conversation = _get(api, tenant, "/conversations", phone_number_id=phone_number_id, customer_id=customer)
    return f"conversation:{conversation['conversations'][0]['conversation_id']}"


def _retry(api: Api, tenant: Tenant, message_id: int | str) -> Any:
    return api.client.post(f"/users/{tenant.user_id}/messages/{message_id}/retry", headers=tenant.headers)


def test_retrying_a_failed_customer_message_queues_it_again(api: Api, chatty: Tenant) -> None:
    message_id = _failed_inbound(api, chatty)

    response = _retry(api, chatty, message_id)

    assert response.status_code == 200
    body = _json(response)
    assert (body["message_id"], body["retried"], body["status"], body["failure_reason"]) == (
        message_id,
        True,
        "received",
        None,
    )
    assert list(api.container.queue().jobs) == [_scope_of(api, chatty, "pn_1", "alice")]


def test_retrying_a_refused_reply_part_sends_it_once_more(api: Api, chatty: Tenant) -> None:
    part_id = _failed_part(api, chatty)
    sender = api.container.recording_sender()

    first = _json(_retry(api, chatty, part_id))
    second = _json(_retry(api, chatty, part_id))

    [sent] = sender.sent
    assert (first["retried"], first["status"], first["platform_message_id"]) == (True, "sent", sent.platform_message_id)
    assert (second["retried"], second["status"]) == (False, "sent")
    assert {k: v for k, v in second.items() if k != "retried"} == {k: v for k, v in first.items() if k != "retried"}


def test_retrying_a_message_that_is_not_failed_changes_nothing(api: Api, chatty: Tenant) -> None:
    listed = _get(api, chatty, "/messages")["messages"][0]
    api.container.queue().jobs.clear()

    body = _json(_retry(api, chatty, listed["message_id"]))

    assert body == {**listed, "retried": False}
    assert not api.container.queue().jobs


def test_a_retry_in_an_archived_conversation_is_409(api: Api, chatty: Tenant) -> None:
    message_id = _failed_inbound(api, chatty)
    _archive(api, _message(api, message_id).conversation_id)

    _error(_retry(api, chatty, message_id), 409, "conversation_archived")
    assert _message(api, message_id).status is MessageStatus.FAILED


def test_a_retry_outside_the_service_window_is_409_and_sends_nothing(api: Api, chatty: Tenant) -> None:
    part_id = _failed_part(api, chatty)
    api.clock.advance(hours=25)

    _error(_retry(api, chatty, part_id), 409, "outside_service_window")
    assert not api.container.recording_sender().sent
    assert _message(api, part_id).status is MessageStatus.FAILED


def test_a_persons_instagram_reply_retried_after_24_hours_goes_with_the_human_agent_tag(
    api: Api, tenant: Tenant
) -> None:
    account = "17841400000000042"
    channel = {"type": "instagram", "phone_number_id": account, "external_number": "@shop", "access_token": "IGtoken"}
    added = api.client.post(f"/users/{tenant.user_id}/phone_numbers", json=channel, headers=tenant.headers)
    assert added.status_code == 201, added.json
    api.create_agent(tenant, account)
    api.receive(account, "IGSID42", "open on Sunday?")
    conversation_id = _get(api, tenant, "/messages")["messages"][0]["conversation_id"]
    sender = api.container.recording_sender()
    sender.failures.append(DeliveryFailed("Service unavailable", code="2"))
    refused = api.client.post(
        f"/users/{tenant.user_id}/conversations/{conversation_id}/messages",
        json={"text": "Maria here: yes, from 10 to 4."},
        headers=tenant.headers,
    )
    assert refused.status_code == 502
    api.clock.advance(hours=25)

    response = _retry(api, tenant, _json(refused)["error"]["message_id"])

    assert response.status_code == 200
    body = _json(response)
    assert (body["retried"], body["status"], body["sender"]) == (True, "sent", "human")
    assert [(sent.text, sent.human_agent) for sent in sender.sent] == [("Maria here: yes, from 10 to 4.", True)]


def test_another_tenants_or_an_unknown_message_is_404_on_retry(api: Api, chatty: Tenant, other: Tenant) -> None:
    theirs = _get(api, other, "/messages")["messages"][0]["message_id"]
    _store(api).messages[theirs] = evolve(_message(api, theirs), status=MessageStatus.FAILED, failure_reason="x")

    for message_id in (theirs, 999, "abc", "9" * 30):
        _error(_retry(api, chatty, message_id), 404, "not_found")
    response = api.client.post(f"/users/{other.user_id}/messages/{theirs}/retry", headers=chatty.headers)
    _error(response, 404, "not_found")
    assert _message(api, theirs).status is MessageStatus.FAILED
    assert _message(api, theirs).direction is Direction.INBOUND
