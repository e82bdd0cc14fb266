"""What every operation shares: the error body, the headers, and helpers that write an operation.

Each resource module (`users`, `channels`, …) writes its operations with `operation` and names the
error statuses it can answer; `__init__` puts them together with `components`. Header names are the
settings' (`API_KEY_HEADER`, `CORRELATION_ID_HEADER`), so the document describes the running service.
"""

from __future__ import annotations

from typing import Any

from domain import limits
from entrypoints.http.api.payloads import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from entrypoints.http.openapi.schemas import JsonSchema, closed, nullable, ref
from entrypoints.settings import Settings

#: What each error status means, for every operation that can answer it.
ERROR_MEANINGS = {
    400: "The body is not JSON (`malformed_json`), or a webhook delivery is not one Meta sends.",
    401: (
        "The API key header is missing or unknown (`unauthorized`), a webhook signature does not match, or a "
        "web chat visitor token is missing, altered or expired (start a new session)."
    ),
    403: (
        "Refused (`verification_failed` for a webhook subscription with the wrong token; `origin_not_allowed` "
        "for a page on a site a web chat widget does not list)."
    ),
    404: "Nothing with this id exists for this key: another tenant's resources answer the same.",
    405: "The path exists but not with this method.",
    409: "The request conflicts with what is stored (a duplicate e-mail, a channel id already taken, …).",
    413: "The body is larger than 4 MB (a web chat visitor's message: 16 KiB).",
    429: "Too many requests for this visitor or widget (`rate_limited`); try again after `Retry-After` seconds.",
    422: "A field is missing, of the wrong type, longer than its bound or holds NUL; `field` names it.",
    503: "The database is unavailable; nothing was stored. Try again after `Retry-After` seconds.",
    500: (
        "A fault of the service, never of the request (`internal_error`), logged with the correlation id: "
        "for example no key of `TOKEN_ENCRYPTION_KEYS` opens a stored access token. Nothing was half-written."
    ),
}

#: Statuses every operation may answer whatever it is: a fault of the service itself.
SERVICE_FAULTS = (500,)

#: Statuses any API operation can answer: no or a wrong key, an id naming nothing, the database away.
COMMON_ERRORS = (401, 404, 503)
#: Added for operations that read a JSON body.
BODY_ERRORS = (400, 413, 422)

ERROR = closed(
    {
        "error": closed(
            {
                "code": {"type": "string", "description": "Machine-readable, e.g. `validation_failed`."},
                "message": {"type": "string", "description": "For people: what is wrong and how to fix it."},
                "field": nullable({"type": "string", "description": "The body field or parameter at fault."}),
                "correlation_id": nullable({"type": "string", "maxLength": limits.CORRELATION_ID}),
                "timestamp": {"type": "string", "format": "date-time"},
            }
        )
    },
    description="The one error body of the service, whatever the status.",
)

PAGINATION = {
    "Limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Items per page (default {DEFAULT_PAGE_SIZE}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "`next_cursor` of the previous page; absent for the first page.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def path_id(name: str, description: str) -> JsonSchema:
    """A path parameter naming something the service stores (at most `limits.ENTITY_ID` characters)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": limits.ENTITY_ID, "pattern": "^[^/]+$"},
    }


USER_ID = path_id("user_id", "The tenant's id (`usr_…`).")


def query(name: str, schema: JsonSchema, description: str) -> JsonSchema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def json_content(schema: JsonSchema) -> JsonSchema:
    return {"application/json": {"schema": schema}}


def answer(description: str, schema: JsonSchema | None = None) -> JsonSchema:
    response: JsonSchema = {"description": description, "headers": {"X-Correlation-Id": correlation_header()}}
    if schema is not None:
        response["content"] = json_content(schema)
    return response


def correlation_header() -> JsonSchema:
    return {"$ref": "#/components/headers/CorrelationId"}


def errors(*statuses: int) -> dict[str, JsonSchema]:
    return {str(status): {"$ref": f"#/components/responses/Error{status}"} for status in statuses}


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    responses: dict[str, JsonSchema],
    error_statuses: tuple[int, ...],
    parameters: list[JsonSchema] | None = None,
    body: JsonSchema | None = None,
    secured: bool = True,
    description: str = "",
) -> JsonSchema:
    """One operation; `error_statuses` become references to the shared error responses."""
    described: JsonSchema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        described["description"] = description
    if parameters:
        described["parameters"] = parameters
    if body is not None:
        described["requestBody"] = {"required": True, "content": json_content(body)}
    described["responses"] = {**responses, **errors(*sorted({*error_statuses, *SERVICE_FAULTS}))}
    described["security"] = [{"ApiKey": []}] if secured else []
    return described


def components(settings: Settings, schemas: dict[str, JsonSchema]) -> dict[str, Any]:
    return {
        "schemas": {"Error": ERROR, **schemas},
        "parameters": {
            **PAGINATION,
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Replaying a key gives the first answer again, and the change is made once.",
                "schema": {"type": "string", "minLength": 1, "maxLength": limits.IDEMPOTENCY_KEY},
            },
            "CorrelationId": {
                "name": settings.correlation_id_header,
                "in": "header",
                "required": False,
                "description": "Echoed in the response and in error bodies; a malformed one is replaced.",
                "schema": {"type": "string"},
            },
        },
        "headers": {
            "CorrelationId": {
                "description": (
                    f"`{settings.correlation_id_header}`: the request's, when given and plain "
                    f"(`[A-Za-z0-9._:-]`, at most {limits.CORRELATION_ID} characters), otherwise a new one."
                ),
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": limits.CORRELATION_ID},
            },
        },
        "responses": {
            f"Error{status}": {
                "description": meaning,
                "headers": {"X-Correlation-Id": correlation_header()},
                "content": json_content(ref("Error")),
            }
            for status, meaning in ERROR_MEANINGS.items()
        },
        "securitySchemes": {
            "ApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": settings.api_key_header,
                "description": "The admin key reaches every tenant; a tenant's key only its own resources.",
            }
        },
    }
