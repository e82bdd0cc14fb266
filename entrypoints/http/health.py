"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

health = Blueprint("health", __name__)


@health.get("/health")
def liveness() -> ResponseReturnValue:
    return jsonify(status="ok")
