"""The Flask app factory: webhook, REST API, health. gunicorn serves `entrypoints.http.app:create_app()`."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from domain import limits
from entrypoints.container import Container, build_container
from entrypoints.heap import set_aside_startup_objects
from entrypoints.http.api import register_api
from entrypoints.http.errors import register_error_handlers
from entrypoints.http.health import health
from entrypoints.http.openapi_route import contract
from entrypoints.http.services import serve_from
from entrypoints.http.webchat import allow_streams, webchat
from entrypoints.http.webhook import webhook_blueprint
from entrypoints.io_counting import WEB, io_counts_for
from entrypoints.logging_setup import bind_correlation_id, configure_logging
from entrypoints.schema_check import refuse_unless_current_schema
from entrypoints.settings import Settings

_CORRELATION_ID = re.compile(rf"^[A-Za-z0-9._:-]{{1,{limits.CORRELATION_ID}}}$")


def create_app(container: Container | None = None) -> Flask:
    """Build the app. Without a container (gunicorn) it reads the environment, refuses a database not at
    this release's schema, and opens the pools, in each gunicorn worker after the fork (do not use --preload),
    then sets aside what it built from the garbage collector's passes (`entrypoints.heap`)."""
    serving = container is None
    if container is None:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        refuse_unless_current_schema(settings)
        container = build_container(settings, io_counts_for(settings, WEB))
        container.init_resources()
    settings = container.settings()
    app = Flask(__name__)
    # werkzeug would answer `/users//credits` (an empty id) with a 308 to `/users/credits`, in HTML.
    app.url_map.merge_slashes = False
    # Meta's deliveries are at most 3 MB; nothing we accept is larger.
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    serve_from(app, container)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    header = settings.correlation_id_header

    @app.before_request
    def _correlation_id() -> None:
        given = request.headers.get(header, "")
        g.correlation_id = given if _CORRELATION_ID.match(given) else uuid.uuid4().hex
        bind_correlation_id(g.correlation_id)

    @app.after_request
    def _echo_correlation_id(response: Response) -> Response:
        response.headers[header] = g.get("correlation_id", "")
        return response

    register_error_handlers(app)
    app.register_blueprint(health)
    app.register_blueprint(contract)
    app.register_blueprint(webhook_blueprint(settings.webhook_path))
    register_api(app)
    app.register_blueprint(webchat)
    allow_streams(app, settings.webchat_max_streams)
    if serving:
        set_aside_startup_objects()
    return app
