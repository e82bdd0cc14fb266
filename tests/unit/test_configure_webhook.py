"""ConfigureWebhook on the in-memory unit of work: the secret made on creation and on rotation, and only
then; a new URL keeps it; the delivery log with its attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.ports.lead_storage import DeliveryQuery
from application.use_cases.configure_webhook import ConfigureWebhook, PutWebhookCommand
from application.use_cases.create_user import CreateUserCommand
from domain.errors import NotFound, ValidationFailed
from domain.webhooks import (
    SECRET_PREFIX,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    sign,
    signature_matches,
)
from tests.unit.conftest import App

URL = "https://crm.shop.example/hooks/mcagent"


@pytest.fixture
def configure(app: App) -> ConfigureWebhook:
    return ConfigureWebhook(app.uow, app.ids, app.clock)


def test_creating_the_webhook_makes_a_secret_once(app: App, configure: ConfigureWebhook) -> None:
    created = configure.put(PutWebhookCommand(app.user.user_id, URL))

    assert created.created
    assert created.new_secret is not None and created.new_secret.startswith(SECRET_PREFIX)
    assert created.endpoint.secret == created.new_secret
    assert configure.get(app.user.user_id) == created.endpoint
    assert created.endpoint.created_at == created.endpoint.secret_rotated_at == app.clock.now()


def test_a_new_url_keeps_the_secret_and_shows_none(app: App, configure: ConfigureWebhook) -> None:
    created = configure.put(PutWebhookCommand(app.user.user_id, URL))
    app.clock.advance(minutes=5)

    moved = configure.put(PutWebhookCommand(app.user.user_id, "https://crm.shop.example/v2/hooks"))

    assert not moved.created and moved.new_secret is None
    assert moved.endpoint.url == "https://crm.shop.example/v2/hooks"
    assert moved.endpoint.secret == created.new_secret
    assert moved.endpoint.created_at == created.endpoint.created_at
    assert configure.get(app.user.user_id).url == "https://crm.shop.example/v2/hooks"


def test_rotating_makes_a_new_secret_that_signs_from_then_on(app: App, configure: ConfigureWebhook) -> None:
    created = configure.put(PutWebhookCommand(app.user.user_id, URL))
    app.clock.advance(hours=2)

    rotated = configure.rotate_secret(app.user.user_id)

    assert rotated.new_secret is not None and rotated.new_secret != created.new_secret
    assert rotated.new_secret.startswith(SECRET_PREFIX)
    stored = configure.get(app.user.user_id)
    assert stored.secret_rotated_at == created.endpoint.created_at + timedelta(hours=2)
    # What the receiver verifies with: the new secret, not the old one.
    signature = sign(stored.secret, b'{"event_id":"evt_1"}')
    assert signature_matches(rotated.new_secret, b'{"event_id":"evt_1"}', signature)
    assert created.new_secret is not None
    assert not signature_matches(created.new_secret, b'{"event_id":"evt_1"}', signature)


def test_a_bad_url_is_refused_and_nothing_is_stored(app: App, configure: ConfigureWebhook) -> None:
    for url in ("ftp://crm.shop.example", "https://user:pw@crm.shop.example/", "https://crm.shop.example/#x", " "):
        with pytest.raises(ValidationFailed) as refused:
            configure.put(PutWebhookCommand(app.user.user_id, url))
        assert refused.value.field == "url"
    with pytest.raises(NotFound):
        configure.get(app.user.user_id)


def test_without_a_webhook_get_rotate_and_delete_are_not_found(app: App, configure: ConfigureWebhook) -> None:
    for call in (configure.get, configure.rotate_secret, configure.delete):
        with pytest.raises(NotFound):
            call(app.user.user_id)


def test_deleting_removes_it_and_a_new_one_gets_a_new_secret(app: App, configure: ConfigureWebhook) -> None:
    first = configure.put(PutWebhookCommand(app.user.user_id, URL))

    configure.delete(app.user.user_id)
    again = configure.put(PutWebhookCommand(app.user.user_id, URL))

    assert again.created and again.new_secret not in (None, first.new_secret)


def test_an_unknown_user_is_not_found(configure: ConfigureWebhook) -> None:
    with pytest.raises(NotFound):
        configure.put(PutWebhookCommand("usr_nobody", URL))
    with pytest.raises(NotFound):
        configure.deliveries("usr_nobody", DeliveryQuery())


def test_the_delivery_log_shows_each_delivery_with_its_attempts_newest_first(
    app: App, configure: ConfigureWebhook
) -> None:
    configure.put(PutWebhookCommand(app.user.user_id, URL))
    rival = app.create_user(CreateUserCommand(email="rival@elsewhere.example")).user
    now = app.clock.now()
    with app.uow() as uow:
        failing = uow.webhooks.add_delivery(WebhookDelivery.first(app.user.user_id, 1, "evt_1", URL, now))
        delivered = uow.webhooks.add_delivery(WebhookDelivery.first(app.user.user_id, 2, "evt_2", URL, now))
        uow.webhooks.add_delivery(WebhookDelivery.first(rival.user_id, 3, "evt_3", URL, now))
        refused = WebhookAttempt(1, now, 500, "HTTP 500: down", 40)
        uow.webhooks.save_attempt(failing.answered(refused, accepted=False), refused)
        accepted = WebhookAttempt(1, now, 204, None, 12)
        uow.webhooks.save_attempt(delivered.answered(accepted, accepted=True), accepted)
        uow.commit()

    page = configure.deliveries(app.user.user_id, DeliveryQuery())
    pending = configure.deliveries(app.user.user_id, DeliveryQuery(status=DeliveryStatus.PENDING))

    assert [logged.delivery.event_id for logged in page.items] == ["evt_2", "evt_1"]
    assert [logged.attempts for logged in page.items] == [(accepted,), (refused,)]
    assert page.items[1].delivery.next_attempt_at == now + timedelta(seconds=30)
    assert [logged.delivery.event_id for logged in pending.items] == ["evt_1"]
