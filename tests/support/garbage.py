"""What a call leaves in reference cycles: garbage that waits for the collector, whose passes stop every thread."""

from __future__ import annotations

import gc
from collections.abc import Callable

#: Packages whose objects a call of ours makes: the project's and the clients' it drives. Other garbage (a
#: stand-in server of an earlier test, shutting down meanwhile) is not the call's.
OURS = frozenset(
    {
        "adapters",
        "application",
        "domain",
        "entrypoints",
        "openai",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "tenacity",
        "psycopg",
        "psycopg_pool",
        "redis",
        "requests",
        "urllib3",
    }
)


def left_in_cycles(call: Callable[[], object]) -> list[str]:
    """Run `call` with the collector off, then name the objects of `OURS` that only the collector could free."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        call()
        gc.collect()
        return sorted({_name(found) for found in gc.garbage if _package(found) in OURS})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _package(found: object) -> str:
    owner = getattr(found, "__self__", None) if type(found).__name__ == "method" else found
    module = getattr(owner, "__module__", None) if callable(owner) and not isinstance(owner, type) else None
    return (module or type(owner).__module__ or "").split(".")[0]


def _name(found: object) -> str:
    return f"{type(found).__module__}.{type(found).__qualname__}"
