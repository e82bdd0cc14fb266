"""The management REST API: one blueprint per resource, all behind the API key header."""

from __future__ import annotations

from flask import Flask

from entrypoints.http.api.agents import agents
from entrypoints.http.api.channels import channels
from entrypoints.http.api.credits import credits
from entrypoints.http.api.messages import messages
from entrypoints.http.api.users import users


def register_api(app: Flask) -> None:
    for blueprint in (users, channels, agents, credits, messages):
        app.register_blueprint(blueprint)
