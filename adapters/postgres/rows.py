"""Rows to entities: one cattrs converter for every table, instead of a hand-written mapper per entity.

A row (psycopg's `dict_row`) is structured by column name into the attrs class of the same field
names; enums are built from their values, arrays become tuples. Values come back from psycopg with
the right Python types already, so strings, numbers and timestamps pass through as they are, and so
does a field typed `object`: a JSON value of a jsonb column, as psycopg parsed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import cattrs

T = TypeVar("T")

_PASSED_THROUGH = (str, int, datetime, object)

_converter = cattrs.Converter()
# By exact type: a hook registered for `str` would otherwise also catch the StrEnums.
_converter.register_structure_hook_func(lambda type_: type_ in _PASSED_THROUGH, lambda value, _: value)


def entity(row: Mapping[str, Any], cls: type[T], *, prefix: str = "") -> T:
    """The `cls` a row holds; with `prefix`, only the columns named `<prefix><field>` (a joined table)."""
    if prefix:
        row = {name.removeprefix(prefix): value for name, value in row.items() if name.startswith(prefix)}
    return _converter.structure(row, cls)


def columns(names: str, *, table: str, prefix: str) -> str:
    """`t.a AS p_a, t.b AS p_b`: a joined table's columns, named apart for `entity(..., prefix=)`."""
    return ", ".join(f"{table}.{name.strip()} AS {prefix}{name.strip()}" for name in names.split(","))
