"""Responses checked against the OpenAPI document, and the app's routes against its paths.

`Contract(document).problems(...)` lists how one response departs from the document: a status the
operation does not document, a content type it does not, a required header missing, a body outside
the schema. Responses to paths or methods the document does not have are not checked here:
`route_differences` is what fails for those (an endpoint nobody documented), naming each one.
`ContractCheckedClient` is Flask's test client with every response checked; tests/conftest.py makes
it every app's test client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

_BASE = "urn:mcagent:openapi"
_METHODS = ("get", "put", "post", "delete", "patch")
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


class ContractViolation(AssertionError):
    """A response the document does not describe."""


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            _BASE, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self._paths = [(_template_regex(template), template) for template in document["paths"]]
        self._validators: dict[str, Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The documented template and operation `method path` is an instance of, if any."""
        for regex, template in self._paths:
            if regex.fullmatch(path):
                found = self.document["paths"][template].get(method.lower())
                return (template, found) if found is not None else None
        return None

    def problems(
        self, method: str, path: str, status: int, content_type: str | None, headers: Iterable[str], body: bytes
    ) -> list[str]:
        matched = self.operation(method, unquote(path))
        if matched is None:
            return []
        template, operation = matched
        where = f"{method.upper()} {template} answered {status}"
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{where}, a status the document does not list ({', '.join(operation['responses'])})"]
        pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{status}"
        response, pointer = self._resolved(response, pointer)
        found: list[str] = []
        present = {header.lower() for header in headers}
        for name, header in response.get("headers", {}).items():
            header, _ = self._resolved(header, "")
            if header.get("required") and name.lower() not in present:
                found.append(f"{where} without its required header {name}")
        content = response.get("content", {})
        media = (content_type or "").split(";")[0].strip()
        if not content:
            # A response documented without a body (204) has none.
            return [*found, f"{where} with a body, where none is documented"] if body.strip() else found
        if media not in content:
            return [*found, f"{where} with content type {media!r}, not {' or '.join(content)}"]
        if media == "application/json":
            try:
                value = json.loads(body)
            except ValueError as error:
                return [*found, f"{where} with a body that is not JSON ({error})"]
            validator = self._validator(f"{pointer}/content/{_escape(media)}/schema")
            found += [
                f"{where}: {error.message} at {error.json_path}"
                for error in sorted(validator.iter_errors(value), key=str)
            ]
        return found

    def check(
        self, method: str, path: str, status: int, content_type: str | None, headers: Iterable[str], body: bytes
    ) -> None:
        found = self.problems(method, path, status, content_type, headers, body)
        if found:
            raise ContractViolation("response outside the OpenAPI document:\n  " + "\n  ".join(found))

    def _resolved(self, item: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        while "$ref" in item:
            pointer = item["$ref"].removeprefix("#")
            item = _at(self.document, pointer)
        return item, pointer

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            schema = {"$ref": f"{_BASE}#{pointer}"}
            self._validators[pointer] = Draft202012Validator(
                schema, registry=self._registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        return self._validators[pointer]


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), template)
        for template, item in document["paths"].items()
        for method in item
        if method in _METHODS
    }


def app_operations(app: Flask) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) for every route of `app`, without what Flask adds (HEAD, OPTIONS, static)."""
    return {
        (method, _CONVERTER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def route_differences(app: Flask, document: dict[str, Any]) -> str:
    """'' when the app's routes and the document's operations are the same; otherwise each difference."""
    routes, documented = app_operations(app), documented_operations(document)
    lines = [f"  undocumented route: {method} {path}" for method, path in sorted(routes - documented)]
    lines += [f"  documented, but no such route: {method} {path}" for method, path in sorted(documented - routes)]
    return "\n".join(lines)


class ContractCheckedClient(FlaskClient):
    """Flask's test client; every response to a documented operation must be as the document says."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:  # type: ignore[override]
        response = super().open(*args, **kwargs)
        request = response.request
        contract = self._contract()
        contract.check(
            request.method,
            request.path,
            response.status_code,
            response.content_type,
            response.headers.keys(),
            response.get_data(),
        )
        return response

    def _contract(self) -> Contract:
        app = self.application
        if "openapi_contract" not in app.extensions:
            served = super().open("/openapi.json")
            assert served.status_code == 200, served.get_data(as_text=True)
            app.extensions["openapi_contract"] = Contract(served.get_json())
        contract: Contract = app.extensions["openapi_contract"]
        return contract


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _at(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)
