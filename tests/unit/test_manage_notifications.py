"""ManageNotifications on the in-memory unit of work: unread first, read marks that keep the first reading,
the unread count, and settings changed score by score."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.ports.lead_storage import NotificationQuery
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.manage_notifications import ChangeSettingsCommand, ManageNotifications
from domain.errors import NotFound, ValidationFailed
from domain.notifications import DEFAULT_CREDITS_LOW_AT, NewNotification, Notification, NotificationKind
from tests.unit.conftest import App


@pytest.fixture
def manage(app: App) -> ManageNotifications:
    return ManageNotifications(app.uow, app.clock)


def tell(app: App, title: str, kind: NotificationKind = NotificationKind.HOT_LEAD, user_id: str | None = None) -> int:
    app.clock.advance(minutes=1)
    with app.uow() as uow:
        stored = uow.notifications.add(
            NewNotification(user_id or app.user.user_id, kind, title, f"{kind}:{title}", app.clock.now())
        )
        uow.commit()
    assert stored is not None
    return stored.notification_id


def _titles(notifications: list[Notification] | tuple[Notification, ...]) -> list[str]:
    return [n.title for n in notifications]


def test_unread_come_first_then_read_each_newest_first(app: App, manage: ManageNotifications) -> None:
    first, second, third = (tell(app, title) for title in ("first", "second", "third"))
    manage.mark(app.user.user_id, third, read=True)

    page = manage.list(app.user.user_id, NotificationQuery())

    assert _titles(page.items) == ["second", "first", "third"]
    assert manage.unread_count(app.user.user_id) == 2
    assert [manage.get(app.user.user_id, n).read for n in (first, second, third)] == [False, False, True]


def test_marking_read_twice_keeps_the_first_reading_and_unread_clears_it(app: App, manage: ManageNotifications) -> None:
    notification_id = tell(app, "Hot lead: Ana")
    read = manage.mark(app.user.user_id, notification_id, read=True)
    app.clock.advance(hours=1)

    again = manage.mark(app.user.user_id, notification_id, read=True)
    unread = manage.mark(app.user.user_id, notification_id, read=False)

    assert read.read_at == again.read_at == app.clock.now() - timedelta(hours=1)
    assert unread.read_at is None and not manage.get(app.user.user_id, notification_id).read


def test_mark_all_read_says_how_many_were_unread(app: App, manage: ManageNotifications) -> None:
    for title in ("a", "b", "c"):
        tell(app, title)
    manage.mark(app.user.user_id, tell(app, "d"), read=True)

    assert manage.mark_all_read(app.user.user_id) == 3
    assert manage.unread_count(app.user.user_id) == 0
    assert manage.mark_all_read(app.user.user_id) == 0


def test_another_tenants_notification_is_not_found(app: App, manage: ManageNotifications) -> None:
    rival = app.create_user(CreateUserCommand(email="rival@elsewhere.example")).user
    theirs = tell(app, "theirs", user_id=rival.user_id)

    with pytest.raises(NotFound):
        manage.get(app.user.user_id, theirs)
    with pytest.raises(NotFound):
        manage.mark(app.user.user_id, theirs, read=True)
    assert not manage.get(rival.user_id, theirs).read
    assert manage.unread_count(app.user.user_id) == 0


def test_an_unknown_user_is_not_found_on_every_call(manage: ManageNotifications) -> None:
    calls = [
        lambda: manage.list("usr_nobody", NotificationQuery()),
        lambda: manage.unread_count("usr_nobody"),
        lambda: manage.mark_all_read("usr_nobody"),
        lambda: manage.settings("usr_nobody"),
        lambda: manage.change_settings(ChangeSettingsCommand("usr_nobody", credits_low_at=5)),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()


def test_settings_start_at_the_defaults(app: App, manage: ManageNotifications) -> None:
    settings = manage.settings(app.user.user_id)

    assert dict(settings.hot_lead.minimums) == {"urgency": 3, "budget": 2, "fit": 3}
    assert settings.credits_low_at == DEFAULT_CREDITS_LOW_AT


def test_a_change_of_one_score_keeps_the_others_and_null_stops_looking_at_one(
    app: App, manage: ManageNotifications
) -> None:
    user_id = app.user.user_id

    added = manage.change_settings(ChangeSettingsCommand(user_id, hot_lead={"engagement": 2}))
    dropped = manage.change_settings(ChangeSettingsCommand(user_id, hot_lead={"budget": None, "fit": 2}))
    low = manage.change_settings(ChangeSettingsCommand(user_id, credits_low_at=0))

    assert dict(added.hot_lead.minimums) == {"urgency": 3, "budget": 2, "fit": 3, "engagement": 2}
    assert dict(dropped.hot_lead.minimums) == {"urgency": 3, "fit": 2, "engagement": 2}
    assert dict(low.hot_lead.minimums) == dict(dropped.hot_lead.minimums) and low.credits_low_at == 0
    assert manage.settings(user_id) == low


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"hot_lead": {"speed": 3}}, "hot_lead"),
        ({"hot_lead": {"urgency": 4}}, "hot_lead.urgency"),
        ({"hot_lead": {"urgency": None, "budget": None, "fit": None}}, "hot_lead"),
        ({"credits_low_at": -1}, "credits_low_at"),
        ({"credits_low_at": True}, "credits_low_at"),
    ],
)
def test_a_bad_setting_changes_nothing(
    app: App, manage: ManageNotifications, command: dict[str, object], field: str
) -> None:
    before = manage.settings(app.user.user_id)

    with pytest.raises(ValidationFailed) as refused:
        manage.change_settings(ChangeSettingsCommand(app.user.user_id, **command))  # type: ignore[arg-type]

    assert refused.value.field == field
    assert manage.settings(app.user.user_id) == before
