"""`GET /openapi.json`: the document, for anyone (it holds no secret, only the configured header names)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from entrypoints.http.openapi import openapi_document
from entrypoints.http.services import container

contract = Blueprint("openapi", __name__)


@contract.get("/openapi.json")
def document() -> ResponseReturnValue:
    return jsonify(openapi_document(container().settings()))
