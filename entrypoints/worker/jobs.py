"""RQ job functions. They carry primitive ids only and reload everything they need.

Each worker process is its own composition root: `bind` installs the container it built when it
started, and the job functions resolve their use cases from it.
"""

from __future__ import annotations

from entrypoints.container import Container

_container: Container | None = None


def bind(container: Container) -> None:
    global _container
    _container = container


def _bound() -> Container:
    if _container is None:
        raise RuntimeError("no container bound in this worker process: start workers with `mcagent worker`")
    return _container


def process_scope(scope_key: str, correlation_id: str | None = None) -> int:
    """Answer what is pending in one ordering scope. Safe to run twice, or concurrently."""
    from application.use_cases.process_pending_messages import ProcessScope

    return _bound().process_pending_messages()(ProcessScope(scope_key, correlation_id))
