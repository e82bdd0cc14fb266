"""JSON Schemas read off the classes the API reads and writes, so that the document cannot drift from them.

A request class (`entrypoints.http.api.payloads`) gives its fields, which are required (no default),
their types and the bounds it enforces (`max_length` metadata, from `domain.limits`); an entity gives
the fields its JSON carries. Enums list their domain values. Responses are closed
(`additionalProperties: false`): a field that appears in a response without being documented —
a secret, say — fails the contract tests. Requests are open, as the API ignores unknown keys.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import datetime
from typing import Any

import attrs

from entrypoints.http.api.payloads import MAX_LENGTH

JsonSchema = dict[str, Any]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def type_schema(annotation: object) -> JsonSchema:
    """The JSON Schema of a field annotation: str, int, bool, datetime, an enum, `X | None`, `list[X]`,
    `tuple[X, ...]`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) != 1:
            raise TypeError(f"only `X | None` unions are described, not {annotation}")
        return nullable(type_schema(members[0]))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return {"type": "array", "items": type_schema(item)}
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation)[1:] == (Ellipsis,):
        return {"type": "array", "items": type_schema(typing.get_args(annotation)[0])}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"type": "string", "enum": [member.value for member in annotation]}
    simple = {str: {"type": "string"}, bool: {"type": "boolean"}, int: {"type": "integer"}}
    if annotation in simple:
        return dict(simple[annotation])
    if annotation is datetime:
        return {"type": "string", "format": "date-time"}
    raise TypeError(f"no JSON Schema for {annotation!r}")


def nullable(schema: JsonSchema) -> JsonSchema:
    if "enum" in schema:
        return {**schema, "type": [schema["type"], "null"], "enum": [*schema["enum"], None]}
    if "type" in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def request_schema(cls: type, *, description: str = "") -> JsonSchema:
    """A request class's body: every field without a default is required; strings carry their bound."""
    properties: JsonSchema = {}
    required = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        schema = type_schema(field.type)
        limit = field.metadata.get(MAX_LENGTH)
        if limit is not None:
            schema["maxLength"] = limit
        properties[field.name] = schema
        if field.default is attrs.NOTHING:
            required.append(field.name)
    body: JsonSchema = {"type": "object", "properties": properties, "required": required}
    if description:
        body["description"] = description
    return body


def entity_schema(
    cls: type, *, omit: tuple[str, ...] = (), replace: dict[str, JsonSchema] | None = None, description: str = ""
) -> JsonSchema:
    """An entity's JSON as the API writes it: every field but `omit`, each required (null when empty)."""
    replace = replace or {}
    properties = {
        field.name: replace.get(field.name) or type_schema(field.type)
        for field in attrs.fields(attrs.resolve_types(cls))
        if field.name not in omit
    }
    return closed(properties, description=description)


def closed(properties: JsonSchema, *, description: str = "") -> JsonSchema:
    """An object with exactly these properties, all present."""
    schema: JsonSchema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema
