"""What an open widget shows: the visitor's conversation after a cursor (domain/webchat.py, `Timeline`)."""

from __future__ import annotations

from collections.abc import Callable

from application.ports.repositories import UnitOfWork
from domain.webchat import HISTORY, Timeline, VisitorSession


class ReadVisitorTimeline:
    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def __call__(self, session: VisitorSession, after: int | None) -> Timeline:
        """After `after`, oldest first; with none, the latest `HISTORY` messages (a page opened or reloaded)."""
        with self._uow() as uow:
            messages = uow.messages.visitor_timeline(session.widget_id, session.visitor_id, after, HISTORY)
        if after is None:
            after = messages[0].message_id - 1 if messages else 0
        return Timeline.after(after, messages)
