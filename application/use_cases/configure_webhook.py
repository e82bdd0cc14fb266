"""A business sets the URL its notifications are POSTed to, rotates the secret they are signed with, and
reads the delivery log.

The secret is shown once: when the webhook is created and when it is rotated. Moving the webhook to
another URL keeps it (the receiver goes on verifying with what it has), so that answer carries none.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.lead_storage import DeliveryPage, DeliveryQuery
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator
from domain.errors import NotFound
from domain.webhooks import SECRET_PREFIX, WebhookEndpoint


@frozen
class PutWebhookCommand:
    user_id: str
    url: str


@frozen
class ConfiguredWebhook:
    endpoint: WebhookEndpoint
    #: The secret in clear, when this call made one (a new webhook, a rotation); None otherwise.
    new_secret: str | None
    created: bool = False


class ConfigureWebhook:
    def __init__(self, uow: Callable[[], UnitOfWork], ids: IdGenerator, clock: Clock) -> None:
        self._uow = uow
        self._ids = ids
        self._clock = clock

    def put(self, command: PutWebhookCommand) -> ConfiguredWebhook:
        """Create the webhook (with a new secret) or move it to `url` (keeping its secret)."""
        with self._uow() as uow:
            _require_user(uow, command.user_id)
            current = uow.webhooks.endpoint(command.user_id)
            if current is None:
                secret = self._new_secret()
                endpoint = WebhookEndpoint.configure(command.user_id, command.url, secret, self._clock.now())
                configured = ConfiguredWebhook(endpoint, new_secret=secret, created=True)
            else:
                configured = ConfiguredWebhook(current.move_to(command.url), new_secret=None)
            uow.webhooks.save_endpoint(configured.endpoint)
            uow.commit()
        return configured

    def rotate_secret(self, user_id: str) -> ConfiguredWebhook:
        """A new secret, signing from the next POST on; the old one stops verifying at once."""
        secret = self._new_secret()
        with self._uow() as uow:
            rotated = _endpoint(uow, user_id).rotate(secret, self._clock.now())
            uow.webhooks.save_endpoint(rotated)
            uow.commit()
        return ConfiguredWebhook(rotated, new_secret=secret)

    def get(self, user_id: str) -> WebhookEndpoint:
        with self._uow() as uow:
            return _endpoint(uow, user_id)

    def delete(self, user_id: str) -> None:
        """No more POSTs; the deliveries still pending are given up by their next attempt."""
        with self._uow() as uow:
            _require_user(uow, user_id)
            if not uow.webhooks.delete_endpoint(user_id):
                raise NotFound("no webhook is configured")
            uow.commit()

    def deliveries(self, user_id: str, query: DeliveryQuery) -> DeliveryPage:
        """The delivery log, newest first, each delivery with its attempts."""
        with self._uow() as uow:
            _require_user(uow, user_id)
            return uow.webhooks.list(user_id, query)

    def _new_secret(self) -> str:
        return SECRET_PREFIX + self._ids.new_secret()


def _endpoint(uow: UnitOfWork, user_id: str) -> WebhookEndpoint:
    _require_user(uow, user_id)
    endpoint = uow.webhooks.endpoint(user_id)
    if endpoint is None:
        raise NotFound("no webhook is configured")
    return endpoint


def _require_user(uow: UnitOfWork, user_id: str) -> None:
    if uow.users.get(user_id) is None:
        raise NotFound(f"user {user_id} not found")
