"""The strict cattrs converter that structures Meta's JSON into the channels' envelope classes.

Strict about what it reads, because cattrs' defaults guess: a misplaced object would become its repr
where a string is expected, and a string or an object would be iterated into a tuple's items. Quiet
about what it does not read: unknown keys are ignored. A field typed `object` is passed through as
is, so that a list of items can be kept as `tuple[object, ...]` and structured one item at a time:
one bad message does not cost the others. An attrs field named after a Python keyword plus `_`
(`from_`) reads the JSON key without it (`from`).
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from attrs import AttrsInstance
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, override

_T = TypeVar("_T")
_AttrsClass = TypeVar("_AttrsClass", bound=AttrsInstance)


class Unreadable(Exception):
    """One part of a delivery could not be read; `detail` says where and why (cattrs' words)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def read(value: object, cls: type[_T], path: str) -> _T:
    """`value` structured as `cls`; Unreadable, naming the bad field under `path`, when it does not fit."""
    try:
        return _converter.structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as error:
        raise Unreadable("; ".join(cattrs.transform_error(error, path))) from error


def _strict_str(value: object, _: type) -> str:
    # cattrs' default hook would turn a misplaced object into its repr; a wrong type is a bad payload.
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _unix_seconds(value: object, _: type) -> datetime:
    """Meta's WhatsApp timestamps: Unix seconds, sent as a string of digits."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected Unix seconds, got {type(value).__name__}")
    if isinstance(value, str) and not value.isdigit():
        raise ValueError(f"expected Unix seconds, got {value!r}")
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(f"Unix seconds out of range: {value!r}") from error


def _is_variadic_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _json_array_only(type_: Any, converter: cattrs.BaseConverter) -> Callable[[object, Any], tuple[object, ...]]:
    # The default tuple hook iterates anything iterable: a string or an object would become its items.
    structure_items = homogenous_tuple_structure_factory(type_, converter)

    def structure(value: object, _: Any) -> tuple[object, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        result: tuple[object, ...] = structure_items(value, type_)
        return result

    return structure


def _json_object_only(cls: type[_AttrsClass], converter: cattrs.Converter) -> Callable[[object, Any], _AttrsClass]:
    renames: dict[str, Any] = {
        field.name: override(rename=field.name[:-1])
        for field in attrs.fields(cls)
        if field.name.endswith("_") and keyword.iskeyword(field.name[:-1])
    }
    structure_fields = make_dict_structure_fn(cls, converter, **renames)

    def structure(value: object, _: Any) -> _AttrsClass:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return structure_fields(value, cls)

    return structure


_converter = cattrs.Converter()
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(datetime, _unix_seconds)
_converter.register_structure_hook_func(lambda type_: type_ is object, lambda value, _: value)
_converter.register_structure_hook_factory(_is_variadic_tuple, _json_array_only)
_converter.register_structure_hook_factory(attrs.has, _json_object_only)
