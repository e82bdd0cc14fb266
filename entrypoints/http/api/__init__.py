"""The management REST API: one blueprint per resource, all behind the API key header."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter

from domain import limits
from entrypoints.http.api.agents import agents
from entrypoints.http.api.channels import channels
from entrypoints.http.api.conversations import conversations
from entrypoints.http.api.credits import credits
from entrypoints.http.api.extractions import extractions
from entrypoints.http.api.messages import messages
from entrypoints.http.api.notifications import notifications
from entrypoints.http.api.users import users
from entrypoints.http.api.webhooks import webhooks


class EntityIdConverter(BaseConverter):
    """`<id:…>`: a path segment that can name something the service stores — at most `limits.ENTITY_ID`
    characters, no NUL (werkzeug decodes paths without lone surrogates). Anything else names nothing,
    so the route does not match and the answer is 404, before any lookup is tried with it."""

    regex = rf"[^/\x00]{{1,{limits.ENTITY_ID}}}"


def register_api(app: Flask) -> None:
    app.url_map.converters["id"] = EntityIdConverter
    for blueprint in (users, channels, agents, credits, messages, conversations, extractions, notifications, webhooks):
        app.register_blueprint(blueprint)
