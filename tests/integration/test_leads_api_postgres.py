"""The leads, notifications and webhook routes on PostgreSQL: what the in-memory unit tests show holds on
the real storage — a demo time back in the customer's offset, the channel's kind from its table, the
unread-first cursor, and a webhook secret shown once and stored encrypted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from application.ports.repositories import ConversationQuery
from domain.extraction import Extraction, LeadFields
from domain.notifications import NewNotification, NotificationKind
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.inprocess import WHATSAPP_NUMBERS, InProcessService
from tests.support.secrets import TEST_TOKEN_KEY

NEW_YORK_WINTER = timezone(timedelta(hours=-5))


@pytest.fixture
def service(clean_database: str, redis_url: str) -> Iterator[InProcessService]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": clean_database,
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": "leads-webhook-secret",
            "WEBHOOK_VERIFY_TOKEN": "leads-verify-token",
            "ADMIN_API_KEY": "leads-admin-key",
            "OFFLINE_RESPONDER": "true",
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        }
    )
    container = build_container(settings)
    container.init_resources()
    yield InProcessService(container)
    container.shutdown_resources()


def _get(service: InProcessService, path: str, **params: object) -> dict[str, Any]:
    answer = service.client.get(f"/users/{service.user_id}{path}", query_string=params, headers=service.tenant)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    return body


def _conversation_id(service: InProcessService) -> int:
    service.deliver_valid_text()
    service.drain()
    page = service.container.tenant_queries().conversations(service.user_id, ConversationQuery())
    return page.items[0].conversation_id


def test_a_lead_is_listed_with_its_channel_and_its_demo_in_the_customers_offset(service: InProcessService) -> None:
    conversation_id = _conversation_id(service)
    written = datetime.now(UTC)
    answers = [
        {"name": "Ana", "urgency": 2},
        {
            "name": "Ana",
            "urgency": 3,
            "email": "ana@",
            "demo_datetime": (written + timedelta(days=2)).astimezone(NEW_YORK_WINTER).isoformat(),
        },
    ]
    with service.container.uow()() as uow:
        for through, answer in enumerate(answers, start=1):
            fields = LeadFields.from_answer(answer, written_at=written)
            stored = uow.extractions.add(
                Extraction(None, service.user_id, conversation_id, WHATSAPP_NUMBERS[0], through, fields, written)
            )
            assert stored is not None
        uow.commit()
    demo = datetime.fromisoformat(str(answers[1]["demo_datetime"]))

    (lead,) = _get(service, "/extractions", min_urgency=3, channel="whatsapp")["extractions"]
    history = _get(service, f"/conversations/{conversation_id}/extractions")["extractions"]

    assert lead["channel"] == "whatsapp" and lead["through_sequence_no"] == 2
    assert lead["demo_datetime"] == demo.isoformat() and lead["demo_datetime"].endswith("-05:00")
    assert lead["email"] is None and lead["missing"]["email"] == "'ana@' is not an e-mail address"
    assert [reading["urgency"] for reading in history] == [3, 2]
    assert _get(service, "/extractions", channel="instagram")["extractions"] == []


def test_notifications_page_unread_first_across_the_read_ones(service: InProcessService) -> None:
    now = datetime.now(UTC)
    with service.container.uow()() as uow:
        ids = []
        for n in range(4):
            stored = uow.notifications.add(
                NewNotification(service.user_id, NotificationKind.CREDITS_LOW, f"low {n}", f"low:{n}", now)
            )
            assert stored is not None
            ids.append(stored.notification_id)
        uow.commit()
    marked = service.client.patch(
        f"/users/{service.user_id}/notifications/{ids[3]}", json={"read": True}, headers=service.tenant
    )
    assert marked.status_code == 200

    first = _get(service, "/notifications", limit=2)
    second = _get(service, "/notifications", limit=2, cursor=first["next_cursor"])

    titles = [n["title"] for n in [*first["notifications"], *second["notifications"]]]
    assert titles == ["low 2", "low 1", "low 0", "low 3"]
    assert second["next_cursor"] is None
    assert _get(service, "/notifications/unread-count") == {"unread": 3}


def test_the_webhook_secret_is_shown_once_and_stored_encrypted(service: InProcessService, clean_database: str) -> None:
    url = f"/users/{service.user_id}/webhook"
    created = service.client.put(url, json={"url": "https://crm.example.com/hooks"}, headers=service.tenant)
    moved = service.client.put(url, json={"url": "https://crm.example.com/v2"}, headers=service.tenant)

    secret = created.get_json()["secret"]
    assert created.status_code == 201 and moved.status_code == 200
    assert "secret" not in moved.get_json() and "secret" not in _get(service, "/webhook")
    with psycopg.connect(clean_database) as conn:
        row = conn.execute(
            "SELECT url, secret FROM webhook_endpoints WHERE user_id = %s", (service.user_id,)
        ).fetchone()
    assert row is not None and row[0] == "https://crm.example.com/v2"
    assert secret not in row[1]
    with service.container.uow()() as uow:
        endpoint = uow.webhooks.endpoint(service.user_id)
    assert endpoint is not None and endpoint.secret == secret
