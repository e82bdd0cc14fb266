"""JSON from outside, read without the parser's own failure modes and made storable, for both edges.

Python's json module meets some bodies with an exception other than JSONDecodeError, or with a value
that cannot be stored: nesting deeper than the interpreter's recursion limit (RecursionError), an
integer of more than 4,300 digits (ValueError), the non-standard NaN and Infinity (accepted as floats
that no JSON column takes), a number beyond a double's range (read as infinity). `parse_json` refuses
what is not JSON (deep nesting included, NaN and Infinity included) as NotJson, and keeps the numbers
it cannot hold as the text they were written as: one odd number under a key nobody reads must not
cost a delivery the messages beside it. `storable_json` makes every string storable, keys included.
Both walk values with a stack of their own, not recursion: what json could parse, they can walk.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from domain import limits


class NotJson(ValueError):
    """The body is not JSON the service reads; the text says why."""


def parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw, parse_constant=_not_json, parse_float=_float, parse_int=_integer)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotJson(str(error)) from None
    except RecursionError:
        raise NotJson("nested more deeply than it can be read") from None


def _not_json(constant: str) -> object:
    raise NotJson(f"{constant} is not a JSON value")


def _float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def _integer(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return text


#: What in a body can decode to a character `limits.storable` replaces: the escape of NUL or of any surrogate
#: (a pair's halves too: an emoji escaped as `\ud83d\ude00` decodes to one character, but telling costs the
#: walk this saves) and a surrogate's own UTF-8 bytes (json decodes bytes with "surrogatepass").
_MAY_DECODE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\xed[\xa0-\xbf]")


def decodes_storable(raw: bytes) -> bool:
    """True when every string `parse_json(raw)` returns, keys included, is already `limits.storable`, so
    that `storable_json` would copy it unchanged: one search of the body instead of a walk of every string
    (the walk was the webhook's largest cost of its own). A body with a NUL byte may be UTF-16 or UTF-32,
    which json also reads and this search would not see through: those take the walk."""
    return b"\x00" not in raw and _MAY_DECODE_UNSTORABLE.search(raw) is None


def storable_json(value: object) -> object:
    """A copy of decoded JSON whose every string, keys included, is `limits.storable`. Keys that become
    equal keep the last value, as JSON's repeated keys do."""
    if not isinstance(value, dict | list):
        return _storable_scalar(value)
    root = _empty_like(value)
    pending: list[tuple[_Container, _Container]] = [(value, root)]
    while pending:
        source, copy = pending.pop()
        if isinstance(source, dict) and isinstance(copy, dict):
            for key, item in source.items():
                copy[limits.storable(key)] = _copy_of(item, pending)
        elif isinstance(source, list) and isinstance(copy, list):
            copy.extend(_copy_of(item, pending) for item in source)
    return root


_Container = dict[str, Any] | list[Any]


def _copy_of(item: object, pending: list[tuple[_Container, _Container]]) -> object:
    """A scalar made storable, or an empty container of the same kind that `pending` fills in later."""
    if not isinstance(item, dict | list):
        return _storable_scalar(item)
    copy = _empty_like(item)
    pending.append((item, copy))
    return copy


def _empty_like(container: _Container) -> _Container:
    return {} if isinstance(container, dict) else []


def _storable_scalar(value: object) -> object:
    return limits.storable(value) if isinstance(value, str) else value


def json_depth(value: object) -> int:
    """How deeply `value` nests: 0 for a scalar, 1 for `[]` or `{"a": 1}`, 2 for `[[]]`…"""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def json_size(value: object) -> int:
    """UTF-8 bytes of `value`'s compact JSON (call with a bounded `json_depth`: json.dumps recurses)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
