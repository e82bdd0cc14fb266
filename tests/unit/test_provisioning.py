"""Tenants, their keys, channels, agents and credits, and the read side the API shows."""

from __future__ import annotations

import hashlib

import pytest

from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import ChannelType
from domain.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from tests.unit.conftest import ADMIN_KEY, PHONE_NUMBER_ID, App

# --- users and keys ------------------------------------------------------------------------------


def test_new_user_gets_a_key_that_is_stored_only_as_its_hash(app: App) -> None:
    created = app.create_user(CreateUserCommand(email=" Second@Shop.Example ", company_name="  "))

    stored = app.queries.user(created.user.user_id)
    assert stored.api_key_hash == hashlib.sha256(created.api_key.encode()).hexdigest()
    assert created.api_key not in repr(app.store.tables.users)
    assert (stored.email, stored.company_name) == ("second@shop.example", None)


def test_two_users_get_different_keys(app: App) -> None:
    other = app.create_user(CreateUserCommand(email="other@shop.example"))

    assert other.api_key != app.api_key


def test_e_mail_can_be_used_by_one_user_only(app: App) -> None:
    with pytest.raises(Conflict):
        app.create_user(CreateUserCommand(email="OWNER@shop.example"))


def test_user_with_invalid_e_mail_is_not_created(app: App) -> None:
    with pytest.raises(ValidationFailed):
        app.create_user(CreateUserCommand(email="not-an-email"))
    assert len(app.store.tables.users) == 1


def test_admin_key_authenticates_the_admin(app: App) -> None:
    principal = app.authenticate(ADMIN_KEY)

    assert principal.is_admin
    principal.require_admin()
    principal.require_access("usr_anyone")


def test_users_key_authenticates_that_user_only(app: App) -> None:
    principal = app.authenticate(app.api_key)

    assert (principal.user_id, principal.is_admin) == (app.user.user_id, False)
    principal.require_access(app.user.user_id)
    with pytest.raises(NotFound):
        principal.require_access("usr_someone_else")
    with pytest.raises(NotFound):
        principal.require_admin()


@pytest.mark.parametrize("key", ["mca_wrong", ADMIN_KEY + "x", ADMIN_KEY[:-1]])
def test_unknown_key_is_refused(app: App, key: str) -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        app.authenticate(key)


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key_is_refused(app: App, key: str | None) -> None:
    with pytest.raises(Unauthorized, match="missing"):
        app.authenticate(key)


# --- channels ------------------------------------------------------------------------------------


def _whatsapp(app: App, **changes: str | None) -> AddChannelCommand:
    values: dict[str, str | None] = {
        "external_number": "+1 555 0199",
        "access_token": "EAAG-token-abcdef",
        "phone_number_id": "pn_200",
    }
    values.update(changes)
    return AddChannelCommand(user_id=app.user.user_id, type=ChannelType.WHATSAPP, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phone_number_id": None}, "phone_number_id"),
        ({"phone_number_id": "  "}, "phone_number_id"),
        ({"access_token": None}, "access_token"),
        ({"access_token": " "}, "access_token"),
        ({"external_number": " "}, "external_number"),
    ],
)
def test_whatsapp_channel_needs_its_id_token_and_number(app: App, changes: dict[str, str | None], field: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        app.add_channel(_whatsapp(app, **changes))

    assert raised.value.field == field
    assert len(app.store.tables.channels) == 1


def test_whatsapp_channel_is_stored_trimmed(app: App) -> None:
    channel = app.add_channel(_whatsapp(app, phone_number_id=" pn_200 ", display_name="  "))

    assert (channel.phone_number_id, channel.display_name) == ("pn_200", None)
    assert [c.phone_number_id for c in app.queries.channels(app.user.user_id)] == [PHONE_NUMBER_ID, "pn_200"]


def test_web_chat_channel_gets_a_generated_id_and_needs_no_token(app: App) -> None:
    channel = app.add_channel(
        AddChannelCommand(user_id=app.user.user_id, type=ChannelType.WEBCHAT, external_number="shop.example")
    )

    assert channel.phone_number_id.startswith("wc_")
    assert channel.access_token == ""


def test_two_web_chat_channels_get_different_ids(app: App) -> None:
    command = AddChannelCommand(user_id=app.user.user_id, type=ChannelType.WEBCHAT, external_number="shop.example")

    assert app.add_channel(command).phone_number_id != app.add_channel(command).phone_number_id


def test_channel_id_can_be_registered_once(app: App) -> None:
    with pytest.raises(Conflict):
        app.add_channel(_whatsapp(app, phone_number_id=PHONE_NUMBER_ID))


def test_channel_of_an_unknown_user_is_refused(app: App) -> None:
    command = AddChannelCommand(
        user_id="usr_nobody", type=ChannelType.WHATSAPP, external_number="+1", access_token="t", phone_number_id="p"
    )
    with pytest.raises(NotFound):
        app.add_channel(command)


# --- agents --------------------------------------------------------------------------------------


def _agent(app: App, **changes: str) -> CreateAgentCommand:
    values = {"name": "Support", "prompt_id": "pmpt_support", "phone_number_id": "pn_200"}
    values.update(changes)
    return CreateAgentCommand(user_id=app.user.user_id, **values)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"name": "  "}, "name"), ({"prompt_id": "support-bot"}, "prompt_id"), ({"prompt_id": ""}, "prompt_id")],
)
def test_agent_needs_a_name_and_an_openai_prompt_id(app: App, changes: dict[str, str], field: str) -> None:
    app.add_channel(_whatsapp(app))

    with pytest.raises(ValidationFailed) as raised:
        app.create_agent(_agent(app, **changes))

    assert raised.value.field == field


def test_agent_is_stored_trimmed_with_its_prompt_version(app: App) -> None:
    app.add_channel(_whatsapp(app))

    agent = app.create_agent(_agent(app, name=" Support ", prompt_id=" pmpt_support ", prompt_version=" 7 "))

    assert (agent.name, agent.prompt_id, agent.prompt_version) == ("Support", "pmpt_support", "7")
    assert agent in app.queries.agents(app.user.user_id)


def test_channel_takes_one_agent_only(app: App) -> None:
    with pytest.raises(Conflict):
        app.create_agent(_agent(app, phone_number_id=PHONE_NUMBER_ID))
    assert len(app.queries.agents(app.user.user_id)) == 1


def test_agent_on_another_tenants_channel_is_refused_as_not_found(app: App) -> None:
    other = app.create_user(CreateUserCommand(email="other@shop.example"))

    with pytest.raises(NotFound):
        app.create_agent(
            CreateAgentCommand(
                user_id=other.user.user_id, name="Sneaky", prompt_id="pmpt_x", phone_number_id=PHONE_NUMBER_ID
            )
        )


# --- credits -------------------------------------------------------------------------------------


def test_top_up_adds_to_the_balance_and_the_ledger(app: App) -> None:
    result = app.top_up(TopUpCommand(user_id=app.user.user_id, amount=25, reason="invoice 42"))

    assert result.credits.balance == 35
    assert (result.entry.amount, result.entry.balance_after, result.entry.reason) == (25, 35, "invoice 42")


def test_top_up_with_the_same_idempotency_key_counts_once(app: App) -> None:
    first = app.top_up(TopUpCommand(user_id=app.user.user_id, amount=25, idempotency_key="inv-42"))
    again = app.top_up(TopUpCommand(user_id=app.user.user_id, amount=25, idempotency_key="inv-42"))

    assert again.entry == first.entry
    assert again.credits.balance == 35
    assert len(app.queries.credits(app.user.user_id).ledger) == 2  # welcome + one top-up


def test_top_ups_without_idempotency_key_all_count(app: App) -> None:
    app.top_up(TopUpCommand(user_id=app.user.user_id, amount=5))
    result = app.top_up(TopUpCommand(user_id=app.user.user_id, amount=5))

    assert result.credits.balance == 20


@pytest.mark.parametrize("amount", [0, -5])
def test_top_up_of_nothing_or_less_is_refused(app: App, amount: int) -> None:
    with pytest.raises(ValidationFailed):
        app.top_up(TopUpCommand(user_id=app.user.user_id, amount=amount))
    assert app.credits().balance == 10


def test_top_up_of_an_unknown_user_is_refused(app: App) -> None:
    with pytest.raises(NotFound):
        app.top_up(TopUpCommand(user_id="usr_nobody", amount=5))


# --- the read side -------------------------------------------------------------------------------


def test_balance_is_served_from_the_cache_once_read(app: App) -> None:
    assert app.queries.balance(app.user.user_id).balance == 10
    assert app.user.user_id in app.balance_cache.entries
    opened = app.uow_opened

    assert app.queries.balance(app.user.user_id).balance == 10

    assert app.uow_opened == opened


def test_top_up_refreshes_the_cached_balance(app: App) -> None:
    app.queries.balance(app.user.user_id)

    app.top_up(TopUpCommand(user_id=app.user.user_id, amount=5))

    assert app.queries.balance(app.user.user_id).balance == 15


def test_credits_view_lists_the_ledger_newest_first(app: App) -> None:
    app.top_up(TopUpCommand(user_id=app.user.user_id, amount=5, reason="second"))

    view = app.queries.credits(app.user.user_id)

    assert [e.reason for e in view.ledger] == ["second", "welcome"]


def test_queries_about_an_unknown_user_answer_not_found(app: App) -> None:
    for query in (app.queries.user, app.queries.channels, app.queries.agents, app.queries.balance):
        with pytest.raises(NotFound):
            query("usr_nobody")
