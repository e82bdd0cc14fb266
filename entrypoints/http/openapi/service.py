"""What is not the management API: liveness, readiness, Meta's webhook and this document."""

from __future__ import annotations

from entrypoints.http.openapi.components import answer, operation
from entrypoints.http.openapi.schemas import JsonSchema, closed, ref
from entrypoints.settings import Settings

_CHECK = {"type": "string", "enum": ["ok", "down", "in_memory"]}

SCHEMAS: dict[str, JsonSchema] = {
    "Health": closed({"status": {"type": "string", "enum": ["ok"]}}),
    "Readiness": closed(
        {
            "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
            "checks": closed({"database": _CHECK, "redis": _CHECK}),
            "open_circuits": {
                "type": "object",
                "additionalProperties": True,
                "description": "Upstream circuits open in any process of the service, by name.",
            },
        }
    ),
    "MetaDelivery": {
        "type": "object",
        "description": "A WhatsApp or Instagram webhook delivery as Meta sends it; unknown fields are ignored.",
        "properties": {"object": {"type": "string"}, "entry": {"type": "array", "items": {"type": "object"}}},
    },
    "DeliveryReceipt": closed(
        {
            "received": {"type": "integer", "minimum": 0},
            "outcomes": {"type": "array", "items": {"type": "string"}},
            "statuses_applied": {"type": "integer", "minimum": 0},
            "ignored": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "echoes": {
                "type": "integer",
                "minimum": 0,
                "description": "Messages the business sent from its own WhatsApp Business app (`smb_message_echoes`).",
            },
        }
    ),
}


def paths(settings: Settings) -> dict[str, JsonSchema]:
    """The webhook sits at the configured `WEBHOOK_PATH`."""
    return {
        "/health": {
            "get": operation(
                "health",
                "Liveness: the process runs",
                tag="service",
                responses={"200": answer("Running.", ref("Health"))},
                error_statuses=(),
                secured=False,
            )
        },
        "/ready": {
            "get": operation(
                "ready",
                "Readiness: the database answers",
                tag="service",
                responses={
                    "200": answer("Ready, or degraded (Redis down, a circuit open).", ref("Readiness")),
                    "503": answer("The database does not answer.", ref("Readiness")),
                },
                error_statuses=(),
                secured=False,
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                tag="service",
                responses={"200": answer("The OpenAPI 3.1 document.", {"type": "object"})},
                error_statuses=(),
                secured=False,
            )
        },
        settings.webhook_path: {
            "get": operation(
                "verify_webhook",
                "Meta's subscription handshake",
                tag="webhook",
                parameters=[
                    _hub("hub.mode", "`subscribe`."),
                    _hub("hub.verify_token", "Must equal `WEBHOOK_VERIFY_TOKEN`."),
                    _hub("hub.challenge", "Echoed back as text."),
                ],
                responses={
                    "200": {
                        **answer("The challenge, echoed."),
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                error_statuses=(403,),
                secured=False,
            ),
            "post": operation(
                "receive_delivery",
                "A signed delivery from Meta",
                tag="webhook",
                parameters=[
                    {
                        "name": "X-Hub-Signature-256",
                        "in": "header",
                        "required": True,
                        "description": "`sha256=` and the HMAC-SHA256 of the raw body with `WEBHOOK_SECRET`.",
                        "schema": {"type": "string"},
                    }
                ],
                body=ref("MetaDelivery"),
                responses={"200": answer("Stored (or kept aside as rejected); what was done.", ref("DeliveryReceipt"))},
                error_statuses=(400, 401, 413, 503),
                secured=False,
                description=(
                    "Answered 200 for anything signed that could be made durable, so Meta does not redeliver; "
                    "503 only when nothing could be stored, so that Meta delivers again."
                ),
            ),
        },
    }


def _hub(name: str, description: str) -> JsonSchema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "string"}}
