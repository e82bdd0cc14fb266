"""A tenant's outgoing webhook (where its notifications are POSTed, signed): its URL, its secret (shown
once), and the delivery log. Meta's incoming webhook is entrypoints/http/webhook.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from attrs import field, frozen
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from application.ports.lead_storage import DeliveryQuery, LoggedDelivery
from application.use_cases.configure_webhook import PutWebhookCommand
from domain.webhooks import URL_MAX, DeliveryStatus, WebhookAttempt
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import (
    JsonObject,
    _bounded,
    choice_param,
    configured_webhook_json,
    int_param,
    page_size,
    read_body,
    webhook_json,
)
from entrypoints.http.services import container

webhooks = Blueprint("webhooks", __name__)


@frozen
class PutWebhookRequest:
    url: str = field(metadata=_bounded(URL_MAX))


@webhooks.put("/users/<id:user_id>/webhook")
def put_webhook(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    body = read_body(PutWebhookRequest)
    configured = container().configure_webhook().put(PutWebhookCommand(user_id=user_id, url=body.url))
    return jsonify(configured_webhook_json(configured)), 201 if configured.created else 200


@webhooks.get("/users/<id:user_id>/webhook")
def get_webhook(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(webhook_json(container().configure_webhook().get(user_id)))


@webhooks.delete("/users/<id:user_id>/webhook")
def delete_webhook(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    container().configure_webhook().delete(user_id)
    return "", 204


@webhooks.post("/users/<id:user_id>/webhook/rotate-secret")
def rotate_secret(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(configured_webhook_json(container().configure_webhook().rotate_secret(user_id)))


@webhooks.get("/users/<id:user_id>/webhook/deliveries")
def list_deliveries(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    page = container().configure_webhook().deliveries(user_id, delivery_query(request.args))
    return jsonify(deliveries=[delivery_json(logged) for logged in page.items], next_cursor=page.next_cursor)


def delivery_query(args: Mapping[str, str]) -> DeliveryQuery:
    """GET /users/{id}/webhook/deliveries parameters. Unknown parameters are ignored."""
    return DeliveryQuery(
        status=choice_param(args, "status", DeliveryStatus),
        notification_id=int_param(args, "notification_id", minimum=1),
        cursor=int_param(args, "cursor", minimum=1),
        limit=page_size(args),
    )


def delivery_json(logged: LoggedDelivery) -> JsonObject:
    delivery = logged.delivery
    return {
        "delivery_id": delivery.delivery_id,
        "notification_id": delivery.notification_id,
        "event_id": delivery.event_id,
        "url": delivery.url,
        "status": delivery.status.value,
        "created_at": delivery.created_at.isoformat(),
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "delivered_at": _iso(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "attempts": [attempt_json(attempt) for attempt in logged.attempts],
    }


def attempt_json(attempt: WebhookAttempt) -> JsonObject:
    return {
        "attempt_no": attempt.attempt_no,
        "at": attempt.at.isoformat(),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
