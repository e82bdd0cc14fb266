"""`/users/{user_id}/webhook`: where a tenant's notifications are POSTed (signed with a secret shown once),
and its delivery log."""

from __future__ import annotations

from domain.webhooks import (
    ERROR_MAX,
    EVENT_ID_HEADER,
    GIVE_UP_AFTER,
    SECRET_PREFIX,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryStatus,
    WebhookEndpoint,
)
from entrypoints.http.api.webhooks import PutWebhookRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.schemas import (
    JsonSchema,
    closed,
    entity_schema,
    nullable,
    ref,
    request_schema,
    type_schema,
)

_WEBHOOK = entity_schema(
    WebhookEndpoint,
    omit=("secret",),
    description=(
        f"Each notification is POSTed to `url` as JSON, signed: `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "
        f"the raw body under the secret>`, with `{EVENT_ID_HEADER}` (the same on every attempt) and "
        f"`{TIMESTAMP_HEADER}`. The secret is never shown again after the answer that made it."
    ),
)

_SECRET: JsonSchema = {
    "type": "string",
    "pattern": f"^{SECRET_PREFIX}",
    "description": "The signing secret, shown this once: keep it where the receiver can read it.",
}

_HOURS = int(GIVE_UP_AFTER.total_seconds() // 3600)

SCHEMAS: dict[str, JsonSchema] = {
    "Webhook": _WEBHOOK,
    "WebhookWithSecret": closed(
        {**_WEBHOOK["properties"], "secret": _SECRET},
        description="The webhook and its new signing secret (shown once).",
    ),
    "PutWebhookRequest": request_schema(
        PutWebhookRequest, description="An absolute http(s) URL, without a user name, password or #fragment."
    ),
    "WebhookAttempt": closed(
        {
            "attempt_no": {"type": "integer", "minimum": 1},
            "at": {"type": "string", "format": "date-time"},
            "status_code": nullable({"type": "integer", "description": "The receiver's; null when none came."}),
            "error": nullable({"type": "string", "maxLength": ERROR_MAX, "description": "Why it failed."}),
            "duration_ms": {"type": "integer", "minimum": 0},
        }
    ),
    "WebhookDelivery": closed(
        {
            "delivery_id": {"type": "integer"},
            "notification_id": {"type": "integer"},
            "event_id": {"type": "string", "description": "The same on every attempt: drop one seen before."},
            "url": {"type": "string", "description": "Where it is POSTed."},
            "status": {
                **type_schema(DeliveryStatus),
                "description": (
                    f"`pending` (tried again later), `delivered` (a 2xx came), or `given_up` ({_HOURS} hours after "
                    "the notification without a 2xx)."
                ),
            },
            "created_at": {"type": "string", "format": "date-time"},
            "next_attempt_at": nullable({"type": "string", "format": "date-time"}),
            "delivered_at": nullable({"type": "string", "format": "date-time"}),
            "last_status_code": nullable({"type": "integer"}),
            "last_error": nullable({"type": "string", "maxLength": ERROR_MAX}),
            "attempts": {"type": "array", "items": ref("WebhookAttempt"), "description": "In order."},
        }
    ),
    "WebhookDeliveryPage": closed(
        {
            "deliveries": {"type": "array", "items": ref("WebhookDelivery"), "description": "Newest first."},
            "next_cursor": nullable({"type": "integer", "description": "Pass as `cursor` for the next page."}),
        }
    ),
}

_NO_WEBHOOK = "404 also when no webhook is configured."

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/webhook": {
        "put": operation(
            "put_webhook",
            "Set the URL notifications are POSTed to",
            tag="webhook",
            parameters=[USER_ID],
            body=ref("PutWebhookRequest"),
            responses={
                "201": answer("Created, with its signing secret (shown this once).", ref("WebhookWithSecret")),
                "200": answer("Moved to the URL; the secret is the same, and not shown.", ref("Webhook")),
            },
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS),
            description="A URL that is not absolute http(s), or carries a user name, password or #fragment, is 422.",
        ),
        "get": operation(
            "get_webhook",
            "The webhook",
            tag="webhook",
            parameters=[USER_ID],
            responses={"200": answer("The webhook, without its secret.", ref("Webhook"))},
            error_statuses=COMMON_ERRORS,
            description=_NO_WEBHOOK,
        ),
        "delete": operation(
            "delete_webhook",
            "Stop POSTing notifications",
            tag="webhook",
            parameters=[USER_ID],
            responses={"204": answer("Deleted; deliveries still pending are given up.")},
            error_statuses=COMMON_ERRORS,
            description=_NO_WEBHOOK,
        ),
    },
    "/users/{user_id}/webhook/rotate-secret": {
        "post": operation(
            "rotate_webhook_secret",
            "Replace the signing secret",
            tag="webhook",
            parameters=[USER_ID],
            responses={"200": answer("The new secret (shown this once).", ref("WebhookWithSecret"))},
            error_statuses=COMMON_ERRORS,
            description="The old secret stops signing at once. No body (one sent is ignored). " + _NO_WEBHOOK,
        )
    },
    "/users/{user_id}/webhook/deliveries": {
        "get": operation(
            "list_webhook_deliveries",
            "The delivery log",
            tag="webhook",
            parameters=[
                USER_ID,
                query("status", type_schema(DeliveryStatus), "One status."),
                query("notification_id", {"type": "integer", "minimum": 1}, "One notification's deliveries."),
                query(
                    "cursor",
                    {"type": "integer", "minimum": 1},
                    "`next_cursor` of the previous page; absent for the first page.",
                ),
                {"$ref": "#/components/parameters/Limit"},
            ],
            responses={"200": answer("One page of deliveries, each with its attempts.", ref("WebhookDeliveryPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="The log stays after the webhook is deleted. A bad parameter is 422 naming it.",
        )
    },
}
