"""The OpenAPI 3.1 document of the service, served at `GET /openapi.json`.

One module per resource exports its `PATHS` (or `paths(settings)`) and `SCHEMAS`; this module puts
them together with the shared `components`. Documenting a new endpoint is a local edit: add its
operation to its resource's module (or a new module, listed in `_RESOURCES`). Two modules may
document different methods of one path (the hand-off's PATCH of a conversation beside its GET): path
items are merged method by method, and the same method of a path documented twice is an error. A
schema two modules need may be given by both only if they give the very same one.
Tests check every response they receive against this document, and that every route of the app is
in it (tests/unit/test_openapi_document.py).
"""

from __future__ import annotations

import copy
from typing import Any

from entrypoints.http.openapi import (
    agents,
    channels,
    conversations,
    credits,
    extractions,
    handoff,
    messages,
    notifications,
    service,
    users,
    webchat,
    webhooks,
)
from entrypoints.http.openapi.components import components
from entrypoints.http.openapi.schemas import JsonSchema
from entrypoints.settings import Settings

_RESOURCES = (
    users,
    channels,
    agents,
    credits,
    messages,
    conversations,
    handoff,
    extractions,
    notifications,
    webhooks,
    webchat,
)

#: How responses name the correlation id header until it is given the configured name.
_CORRELATION_HEADER = "X-Correlation-Id"


def openapi_document(settings: Settings) -> dict[str, Any]:
    paths: dict[str, JsonSchema] = {}
    schemas: dict[str, JsonSchema] = {}
    for resource in _RESOURCES:
        merge_paths(paths, resource.PATHS)
        _add(schemas, resource.SCHEMAS)
    merge_paths(paths, service.paths(settings))
    _add(schemas, service.SCHEMAS)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Multi-Channel AI Agent",
            "version": "1",
            "description": (
                "The management API of the service (tenants, channels, agents, credits, messages, conversations, "
                "leads, notifications and the outgoing webhook), "
                "Meta's webhook, the web chat widget's public endpoints and the health checks. "
                "Every error has the same body (`Error`)."
            ),
        },
        "paths": paths,
        "components": components(settings, schemas),
    }
    return _with_correlation_header(document, settings.correlation_id_header)


def merge_paths(into: dict[str, JsonSchema], more: dict[str, JsonSchema]) -> None:
    """Adds `more`'s path items to `into`, method by method: a path may be documented by several modules,
    each of its methods by one."""
    for path, item in more.items():
        merged = into.setdefault(path, {})
        for method, operation in item.items():
            if method in merged:
                raise ValueError(f"{method.upper()} {path} is described twice in the OpenAPI document")
            merged[method] = operation


def _add(into: dict[str, JsonSchema], more: dict[str, JsonSchema]) -> None:
    for key, value in more.items():
        if key in into and into[key] != value:
            raise ValueError(f"{key} is described twice, differently, in the OpenAPI document")
        into[key] = value


def _with_correlation_header(document: dict[str, Any], name: str) -> dict[str, Any]:
    """Each response names the correlation id header; the configured name replaces the default (in a
    copy: the resource modules' operations are shared by every call)."""
    document = copy.deepcopy(document)
    responses = [
        response
        for item in document["paths"].values()
        for operation in item.values()
        for response in operation["responses"].values()
    ]
    for response in [*responses, *document["components"]["responses"].values()]:
        headers = response.get("headers", {})
        if _CORRELATION_HEADER in headers:
            headers[name] = headers.pop(_CORRELATION_HEADER)
    return document
