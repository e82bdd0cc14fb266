"""A business reads what it was told (unread first), marks it read or unread, and chooses when a lead is
hot and when its credits are low."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from attrs import frozen

from application.ports.lead_storage import NotificationPage, NotificationQuery
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock
from domain.errors import NotFound
from domain.notifications import Notification, NotificationSettings


@frozen
class ChangeSettingsCommand:
    """`hot_lead` changes the named scores' minimums (None for a score: no longer looked at) and keeps the
    others; None leaves the thresholds as they are. `credits_low_at` None leaves it as it is."""

    user_id: str
    hot_lead: Mapping[str, object] | None = None
    credits_low_at: object = None


class ManageNotifications:
    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def list(self, user_id: str, query: NotificationQuery) -> NotificationPage:
        with self._uow() as uow:
            _require_user(uow, user_id)
            return uow.notifications.list(user_id, query)

    def get(self, user_id: str, notification_id: int) -> Notification:
        with self._uow() as uow:
            return _notification(uow, user_id, notification_id)

    def mark(self, user_id: str, notification_id: int, *, read: bool) -> Notification:
        """Read (the first time it was read is kept) or unread again."""
        with self._uow() as uow:
            marked = _notification(uow, user_id, notification_id).mark(read=read, now=self._clock.now())
            uow.notifications.save_read(marked)
            uow.commit()
        return marked

    def mark_all_read(self, user_id: str) -> int:
        """How many were unread."""
        with self._uow() as uow:
            _require_user(uow, user_id)
            marked = uow.notifications.mark_all_read(user_id, self._clock.now())
            uow.commit()
        return marked

    def unread_count(self, user_id: str) -> int:
        with self._uow() as uow:
            _require_user(uow, user_id)
            return uow.notifications.unread_count(user_id)

    def settings(self, user_id: str) -> NotificationSettings:
        with self._uow() as uow:
            _require_user(uow, user_id)
            return uow.notifications.settings(user_id)

    def change_settings(self, command: ChangeSettingsCommand) -> NotificationSettings:
        with self._uow() as uow:
            _require_user(uow, command.user_id)
            current = uow.notifications.settings(command.user_id)
            hot_lead = None
            if command.hot_lead is not None:
                hot_lead = {**current.hot_lead.minimums, **command.hot_lead}
            changed = current.change(hot_lead=hot_lead, credits_low_at=command.credits_low_at)
            uow.notifications.save_settings(changed)
            uow.commit()
        return changed


def _notification(uow: UnitOfWork, user_id: str, notification_id: int) -> Notification:
    found = uow.notifications.get(user_id, notification_id)
    if found is None:
        raise NotFound(f"notification {notification_id} not found")
    return found


def _require_user(uow: UnitOfWork, user_id: str) -> None:
    if uow.users.get(user_id) is None:
        raise NotFound(f"user {user_id} not found")
