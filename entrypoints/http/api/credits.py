"""A tenant's credits: balance and recent ledger for the tenant; top-ups for the operator only."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    TopUpRequest,
    credits_json,
    idempotency_key,
    int_param,
    ledger_page_json,
    read_body,
    top_up_json,
)
from entrypoints.http.services import container

credits = Blueprint("credits", __name__)

#: Ledger entries shown with the balance; older ones stay stored.
LEDGER_SHOWN = 20


@credits.get("/users/<id:user_id>/credits")
def get_credits(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(credits_json(container().tenant_queries().credits(user_id, LEDGER_SHOWN)))


@credits.get("/users/<id:user_id>/credits/ledger")
def get_ledger(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    before = int_param(request.args, "cursor", minimum=1)
    limit = int_param(request.args, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
    page = container().tenant_queries().ledger(user_id, DEFAULT_PAGE_SIZE if limit is None else limit, before)
    return jsonify(ledger_page_json(page))


@credits.post("/users/<id:user_id>/credits")
def top_up(user_id: str) -> ResponseReturnValue:
    # A tenant must not mint its own credits; to it the route does not exist.
    caller_for(user_id).require_admin()
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    command = read_body(TopUpRequest).command(user_id, key)
    return jsonify(top_up_json(container().top_up_credits()(command))), 201
