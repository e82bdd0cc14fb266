"""`/users/{user_id}/notifications`: what a tenant was told, unread first; read marks; the unread count;
and `/users/{user_id}/notification-settings`."""

from __future__ import annotations

from domain.extraction import SCORE_FIELDS, SCORE_RANGE
from domain.notifications import CREDITS_LOW_MAX, NotificationKind
from entrypoints.http.api.notifications import MarkNotificationRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation, query
from entrypoints.http.openapi.schemas import JsonSchema, closed, nullable, ref, request_schema, type_schema

NOTIFICATION_ID: JsonSchema = {
    "name": "notification_id",
    "in": "path",
    "required": True,
    "description": "The notification's id (a whole number); anything else names nothing (404).",
    "schema": {"type": "integer", "minimum": 1},
}

_KINDS = (
    "`smart_notification`: what the AI says the sales team should know now; `demo_booked`, `demo_moved`; "
    "`hot_lead`: a lead reached the hot-lead thresholds; `credits_low`, `credits_exhausted`; `channel_failing`; "
    "`waiting_for_human`: a paused conversation has unanswered messages."
)

_FILTERS = [
    query("kind", type_schema(NotificationKind), "One kind: " + _KINDS),
    query(
        "read",
        {"type": "string", "enum": ["true", "false"]},
        "`false`: only the unread ones; `true`: only the read ones. Both when absent.",
    ),
    query("conversation_id", {"type": "integer", "minimum": 1}, "About one conversation."),
    query("since", {"type": "string", "format": "date-time"}, "Created at or after (with a timezone)."),
    query("until", {"type": "string", "format": "date-time"}, "Created before; later than `since`."),
    query(
        "cursor",
        {"type": "string", "pattern": "^[ur][0-9]{1,18}$"},
        "`next_cursor` of the previous page, as it was given (opaque); absent for the first page.",
    ),
    {"$ref": "#/components/parameters/Limit"},
]

_MINIMUM = nullable({"type": "integer", "minimum": min(SCORE_RANGE), "maximum": max(SCORE_RANGE)})

SCHEMAS: dict[str, JsonSchema] = {
    "Notification": closed(
        {
            "notification_id": {"type": "integer"},
            "kind": {**type_schema(NotificationKind), "description": _KINDS},
            "title": {"type": "string", "description": "One line for people."},
            "conversation_id": nullable({"type": "integer", "description": "The conversation it is about."}),
            "phone_number_id": nullable({"type": "string", "description": "The channel it is about."}),
            "data": {
                "type": "object",
                "additionalProperties": True,
                "description": "The details for a program: ids, scores, times (ISO 8601), by kind.",
            },
            "read": {"type": "boolean"},
            "read_at": nullable({"type": "string", "format": "date-time"}),
            "created_at": {"type": "string", "format": "date-time"},
        },
        description="Something the business was told. Also POSTed to its webhook, when it has one.",
    ),
    "NotificationPage": closed(
        {
            "notifications": {
                "type": "array",
                "items": ref("Notification"),
                "description": "Unread first, then read; each newest first.",
            },
            "next_cursor": nullable({"type": "string", "description": "Pass as `cursor` for the next page."}),
        }
    ),
    "MarkNotificationRequest": request_schema(
        MarkNotificationRequest, description="`read: false` marks it unread again."
    ),
    "UnreadCount": closed({"unread": {"type": "integer", "minimum": 0}}),
    "MarkedRead": closed({"marked": {"type": "integer", "minimum": 0, "description": "How many were unread."}}),
    "NotificationSettings": closed(
        {
            "hot_lead": closed(
                {score: _MINIMUM for score in SCORE_FIELDS},
                description="A lead is hot when each score with a minimum is at least that; null: not looked at.",
            ),
            "credits_low_at": {
                "type": "integer",
                "minimum": 0,
                "maximum": CREDITS_LOW_MAX,
                "description": "`credits_low` is sent once the available credits are at or under this.",
            },
        }
    ),
    "NotificationSettingsRequest": {
        "type": "object",
        "properties": {
            "hot_lead": {
                "type": "object",
                "properties": {score: _MINIMUM for score in SCORE_FIELDS},
                "description": (
                    "The scores to change: a minimum from 1 to 3, or null to stop looking at the score. Scores "
                    "not named keep their minimums; at least one score must keep one."
                ),
            },
            "credits_low_at": {"type": "integer", "minimum": 0, "maximum": CREDITS_LOW_MAX},
        },
        "required": [],
        "description": "Every key is optional: an absent key leaves the setting as it is. Neither may be null.",
    },
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/notifications": {
        "get": operation(
            "list_notifications",
            "A tenant's notifications, unread first",
            tag="notifications",
            parameters=[USER_ID, *_FILTERS],
            responses={"200": answer("One page of notifications.", ref("NotificationPage"))},
            error_statuses=(*COMMON_ERRORS, 422),
            description="Filters combine. A bad parameter is 422 naming it; unknown parameters are ignored.",
        )
    },
    "/users/{user_id}/notifications/unread-count": {
        "get": operation(
            "count_unread_notifications",
            "How many notifications are unread",
            tag="notifications",
            parameters=[USER_ID],
            responses={"200": answer("The count.", ref("UnreadCount"))},
            error_statuses=COMMON_ERRORS,
        )
    },
    "/users/{user_id}/notifications/read-all": {
        "post": operation(
            "mark_all_notifications_read",
            "Mark every notification read",
            tag="notifications",
            parameters=[USER_ID],
            responses={"200": answer("How many were unread.", ref("MarkedRead"))},
            error_statuses=COMMON_ERRORS,
            description="No body (one sent is ignored).",
        )
    },
    "/users/{user_id}/notifications/{notification_id}": {
        "get": operation(
            "get_notification",
            "One notification",
            tag="notifications",
            parameters=[USER_ID, NOTIFICATION_ID],
            responses={"200": answer("The notification.", ref("Notification"))},
            error_statuses=COMMON_ERRORS,
        ),
        "patch": operation(
            "mark_notification",
            "Mark a notification read or unread",
            tag="notifications",
            parameters=[USER_ID, NOTIFICATION_ID],
            body=ref("MarkNotificationRequest"),
            responses={"200": answer("The notification as it is now.", ref("Notification"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS),
            description="Marking a read notification read again keeps the time it was first read.",
        ),
    },
    "/users/{user_id}/notification-settings": {
        "get": operation(
            "get_notification_settings",
            "When a lead is hot, and when credits are low",
            tag="notifications",
            parameters=[USER_ID],
            responses={"200": answer("The settings (the defaults until changed).", ref("NotificationSettings"))},
            error_statuses=COMMON_ERRORS,
        ),
        "patch": operation(
            "change_notification_settings",
            "Change the hot-lead thresholds or the low-credits mark",
            tag="notifications",
            parameters=[USER_ID],
            body=ref("NotificationSettingsRequest"),
            responses={"200": answer("The settings as they are now.", ref("NotificationSettings"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS),
            description=(
                "A score that is not one of " + ", ".join(f"`{score}`" for score in SCORE_FIELDS) + ", a minimum "
                "outside 1–3, or thresholds left with no score are 422 naming the field."
            ),
        ),
    },
}
