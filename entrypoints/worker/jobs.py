"""RQ job functions. They carry primitive ids only and reload everything they need.

Each worker process is its own composition root: `bind` installs the container it built when it
started, and the job functions resolve their use cases from it.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import structlog

from entrypoints.container import Container

log = logging.getLogger(__name__)

_container: Container | None = None

#: Set when the worker is asked to stop: drainers finish the scope under way and take no more.
STOPPING = threading.Event()

#: How many scopes one drainer takes at most (None: as many as come). The benchmark's seed-literal worker
#: sets 1, the seed's one job per message.
SCOPES_PER_DRAINER: int | None = None


def bind(container: Container) -> None:
    global _container
    _container = container


def _bound() -> Container:
    if _container is None:
        raise RuntimeError("no container bound: a worker process binds its own before its first job")
    return _container


def drain_scopes() -> int:
    """Answer due scopes one after another (`RqJobQueue.drain`); returns how many were taken.

    A scope that fails (Postgres or Redis briefly away) is logged and left: its messages are stored as
    received, and the sweep queues them again; the drainer goes on with the next scope."""
    from adapters.rq.queue import DueScope
    from application.use_cases.process_pending_messages import ProcessScope

    container = _bound()
    process = container.process_pending_messages()

    def answer(due: DueScope) -> None:
        with structlog.contextvars.bound_contextvars(scope=due.scope_key, correlation_id=due.correlation_id):
            try:
                process(ProcessScope(due.scope_key, due.correlation_id))
            except Exception:
                log.exception("scope_failed")

    taken: int = container.queue().drain(answer, STOPPING, limit=SCOPES_PER_DRAINER)
    return taken


def process_scope(scope_key: str, correlation_id: str | None = None) -> int:
    """Answer what is pending in one ordering scope. Safe to run twice, or concurrently. (One job per scope:
    what releases before the drainers queued; such jobs still waiting in Redis at an upgrade run here.)"""
    from application.ports.services import QueueUnavailable
    from application.use_cases.process_pending_messages import ProcessScope

    container = _bound()
    # Before looking at the scope: work stored from now on needs (and gets) a job of its own. If Redis
    # cannot be told, the mark expires by itself and the sweep covers the meantime.
    with contextlib.suppress(QueueUnavailable):
        container.queue().taken(scope_key)
    return container.process_pending_messages()(ProcessScope(scope_key, correlation_id))


def extract_lead(conversation_id: int) -> bool:
    """Read one conversation for its lead data (background queue). Safe to run twice, or concurrently."""
    from application.use_cases.extract_lead import ExtractLeadCommand

    return _bound().extract_lead()(ExtractLeadCommand(conversation_id)) is not None


def deliver_webhook(delivery_id: int) -> bool:
    """One attempt of one webhook delivery (background queue). Safe to run twice."""
    from application.use_cases.deliver_webhook import DeliverWebhookCommand

    return _bound().deliver_webhook()(DeliverWebhookCommand(delivery_id)) is not None
