"""Tenants: the operator creates them (admin key); each reads its own record."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from entrypoints.http.api.auth import admin_caller, caller_for
from entrypoints.http.api.payloads import CreateUserRequest, created_user_json, read_body, user_json
from entrypoints.http.services import container

users = Blueprint("users", __name__)


@users.post("/users")
def create_user() -> ResponseReturnValue:
    admin_caller()
    command = read_body(CreateUserRequest).command()
    created = container().create_user()(command)
    return jsonify(created_user_json(created)), 201


@users.get("/users/<id:user_id>")
def get_user(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(user_json(container().tenant_queries().user(user_id)))
