"""What a tenant was told (unread first), read and unread marks, the unread count, and its settings (when a
lead is hot, when its credits are low)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from attrs import frozen
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from application.ports.lead_storage import NotificationCursor, NotificationPage, NotificationQuery
from application.use_cases.manage_notifications import ChangeSettingsCommand
from domain.extraction import SCORE_FIELDS
from domain.notifications import Notification, NotificationKind, NotificationSettings
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.conversations import path_id
from entrypoints.http.api.payloads import (
    JsonObject,
    bad_param,
    body_keys,
    bool_param,
    choice_param,
    int_param,
    page_size,
    read_body,
    time_range,
)
from entrypoints.http.errors import ApiError
from entrypoints.http.services import container

notifications = Blueprint("notifications", __name__)

#: `u` (unread) or `r` (read), and the notification the page ended on: where the next page starts.
_CURSOR = re.compile(r"([ur])([0-9]{1,18})")


@frozen
class MarkNotificationRequest:
    read: bool


@frozen
class NotificationSettingsRequest:
    """PATCH body: an absent key is left as it is. `hot_lead` names the scores to change (null: no longer
    looked at); the scores it does not name keep their minimums."""

    hot_lead: dict[str, int | None] | None = None
    credits_low_at: int | None = None

    def command(self, user_id: str, given: frozenset[str]) -> ChangeSettingsCommand:
        for never_null in ("hot_lead", "credits_low_at"):
            if never_null in given and getattr(self, never_null) is None:
                raise ApiError(422, "validation_failed", f"{never_null} must not be null", field=never_null)
        return ChangeSettingsCommand(user_id=user_id, hot_lead=self.hot_lead, credits_low_at=self.credits_low_at)


@notifications.get("/users/<id:user_id>/notifications")
def list_notifications(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    query = notification_query(request.args)
    return jsonify(notification_page_json(container().manage_notifications().list(user_id, query)))


@notifications.get("/users/<id:user_id>/notifications/unread-count")
def unread_count(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(unread=container().manage_notifications().unread_count(user_id))


@notifications.post("/users/<id:user_id>/notifications/read-all")
def mark_all_read(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(marked=container().manage_notifications().mark_all_read(user_id))


@notifications.get("/users/<id:user_id>/notifications/<id:notification_id>")
def get_notification(user_id: str, notification_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    found = container().manage_notifications().get(user_id, path_id(notification_id, "notification"))
    return jsonify(notification_json(found))


@notifications.patch("/users/<id:user_id>/notifications/<id:notification_id>")
def mark_notification(user_id: str, notification_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = path_id(notification_id, "notification")
    body = read_body(MarkNotificationRequest)
    return jsonify(notification_json(container().manage_notifications().mark(user_id, number, read=body.read)))


@notifications.get("/users/<id:user_id>/notification-settings")
def get_settings(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(settings_json(container().manage_notifications().settings(user_id)))


@notifications.patch("/users/<id:user_id>/notification-settings")
def change_settings(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    command = read_body(NotificationSettingsRequest).command(user_id, body_keys())
    return jsonify(settings_json(container().manage_notifications().change_settings(command)))


def notification_query(args: Mapping[str, str]) -> NotificationQuery:
    """GET /users/{id}/notifications parameters. Unknown parameters are ignored."""
    since, until = time_range(args)
    return NotificationQuery(
        kind=choice_param(args, "kind", NotificationKind),
        read=bool_param(args, "read"),
        conversation_id=int_param(args, "conversation_id", minimum=1),
        since=since,
        until=until,
        cursor=_cursor(args.get("cursor")),
        limit=page_size(args),
    )


def _cursor(value: str | None) -> NotificationCursor | None:
    if value is None:
        return None
    match = _CURSOR.fullmatch(value) if value.isascii() else None
    if match is None:
        raise bad_param("cursor", "cursor must be the next_cursor of a previous page, as it was given")
    return NotificationCursor(read=match.group(1) == "r", notification_id=int(match.group(2)))


def cursor_text(cursor: NotificationCursor) -> str:
    """Opaque to clients: whether the page ended among the read ones, and on which notification."""
    return f"{'r' if cursor.read else 'u'}{cursor.notification_id}"


def notification_json(notification: Notification) -> JsonObject:
    """What the business sees of a notification; its dedup key is the service's own."""
    return {
        "notification_id": notification.notification_id,
        "kind": notification.kind.value,
        "title": notification.title,
        "conversation_id": notification.conversation_id,
        "phone_number_id": notification.phone_number_id,
        "data": dict(notification.data),
        "read": notification.read,
        "read_at": None if notification.read_at is None else notification.read_at.isoformat(),
        "created_at": notification.created_at.isoformat(),
    }


def notification_page_json(page: NotificationPage) -> JsonObject:
    return {
        "notifications": [notification_json(notification) for notification in page.items],
        "next_cursor": None if page.next_cursor is None else cursor_text(page.next_cursor),
    }


def settings_json(settings: NotificationSettings) -> JsonObject:
    """Every score, null where a hot lead does not look at it."""
    minimums = settings.hot_lead.minimums
    return {
        "hot_lead": {score: minimums.get(score) for score in SCORE_FIELDS},
        "credits_low_at": settings.credits_low_at,
    }
