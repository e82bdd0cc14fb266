"""The one place that turns errors into HTTP answers, all with the same JSON body.

    {"error": {"code": "...", "message": "...", "field": null, "correlation_id": "...", "timestamp": "..."}}

Routes hold no try/except: they raise domain errors (or `ApiError` for problems of the request
itself) and the handlers registered here answer.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from application.ports.repositories import StorageUnavailable
from domain.errors import (
    ChannelRefused,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

_STATUS = {
    NotFound: 404,
    Conflict: 409,
    ValidationFailed: 422,
    Unauthorized: 401,
    Forbidden: 403,
    # The channel's platform (an upstream) refused what we passed on: stored as failed, see `message_id`.
    ChannelRefused: 502,
    RateLimited: 429,
}


class ApiError(Exception):
    """A problem with the request itself (malformed JSON, a bad signature, a bad query parameter)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "field": field,
            "correlation_id": g.get("correlation_id"),
            "timestamp": datetime.now(UTC).isoformat(),
        }
    }
    response = jsonify(body)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.field)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 400)
        response = error_response(status, error.code, error.message, error.field)
        if isinstance(error, ChannelRefused):
            # The one addition to the error body: which stored message failed (it can be sent again later).
            body = response.get_json()
            body["error"]["message_id"] = error.message_id
            response.set_data(json.dumps(body))
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
        return response

    @app.errorhandler(StorageUnavailable)
    def _storage_unavailable(error: StorageUnavailable) -> Response:
        # For the webhook this makes Meta deliver again later: nothing was acknowledged, nothing lost.
        log.error("storage_unavailable", extra={"detail": str(error)})
        response = error_response(503, "storage_unavailable", "the database is unavailable; try again shortly")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(error.code or 500, code, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled_error")
        return error_response(500, "internal_error", "the service failed to handle this request; it was logged")
