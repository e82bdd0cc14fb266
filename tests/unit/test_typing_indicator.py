"""The WhatsApp typing indicator: the read receipt of a starting turn also shows the customer that a reply
is being written (one Graph call), when TYPING_INDICATOR and MARK_AS_READ allow it."""

from __future__ import annotations

import pytest

from application.ports.services import DeliveryFailed
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.process_pending_messages import TurnPolicy
from domain.channels import ChannelType
from domain.messages import MessageStatus
from entrypoints.container import build_container
from entrypoints.settings import ConfigError, Settings
from tests.unit.conftest import App, MakeApp


def test_a_turn_starts_with_one_read_receipt_that_shows_the_agent_typing(app: App) -> None:
    app.receive("Do you ship to Canada?", wamid="wamid.in")

    app.drain()

    assert app.sender.read == ["wamid.in"]  # one call
    assert app.sender.typing == ["wamid.in"]  # and it carried the indicator
    assert app.sent_texts() == ["reply to: Do you ship to Canada?"]


def test_a_burst_shows_typing_once_on_its_last_message(make_app: MakeApp) -> None:
    app = make_app()
    app.receive("Hi", wamid="wamid.1")
    app.receive("Do you ship to Canada?", wamid="wamid.2")

    app.drain()

    assert len(app.ai.requests) == 1
    assert (app.sender.read, app.sender.typing) == (["wamid.2"], ["wamid.2"])


def test_typing_indicator_off_sends_the_plain_read_receipt(make_app: MakeApp) -> None:
    app = make_app(policy=TurnPolicy(typing_indicator=False))
    app.receive("Hi", wamid="wamid.in")

    app.drain()

    assert (app.sender.read, app.sender.typing) == (["wamid.in"], [])


def test_without_read_receipts_no_typing_indicator_goes_out_either(make_app: MakeApp) -> None:
    """WhatsApp shows typing only through the read receipt, which MARK_AS_READ=false turns off."""
    app = make_app(policy=TurnPolicy(mark_as_read=False, typing_indicator=True))
    app.receive("Hi", wamid="wamid.in")

    app.drain()

    assert (app.sender.read, app.sender.typing) == ([], [])
    assert app.sent_texts() == ["reply to: Hi"]


def test_a_turn_refused_for_credits_shows_no_typing(make_app: MakeApp) -> None:
    """Meta: show the indicator only when a reply is coming."""
    app = make_app(credits=0)
    app.receive("Hi", wamid="wamid.in")

    app.drain()

    assert app.sent_texts() == [] and app.sender.typing == []


def test_a_failed_receipt_with_typing_neither_fails_nor_delays_the_answer(app: App) -> None:
    app.sender.read_failures.append(DeliveryFailed("(#131000) Something went wrong", code="131000"))
    app.receive("Hi", wamid="wamid.in")

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]
    [inbound] = app.inbound_messages()
    assert inbound.status is MessageStatus.ANSWERED
    assert app.sender.typing == []


def test_web_chat_shows_the_visitor_that_the_agent_is_typing(app: App) -> None:
    channel = app.add_channel(
        AddChannelCommand(user_id=app.user.user_id, type=ChannelType.WEBCHAT, external_number="shop.example")
    )
    app.create_agent(
        CreateAgentCommand(
            user_id=app.user.user_id, name="Site", prompt_id="pmpt_site", phone_number_id=channel.phone_number_id
        )
    )
    app.receive("Hi", customer="visitor_1", phone_number_id=channel.phone_number_id)

    app.drain()

    assert app.sent_texts() == ["reply to: Hi"]
    # The widget's only "receipt" is its typing indicator (adapters/webchat/sender.py shows nothing else).
    assert len(app.sender.read) == 1
    assert app.sender.typing == app.sender.read


# --- the setting ----------------------------------------------------------------------------------


def test_typing_indicator_is_on_by_default() -> None:
    settings = Settings.from_env({}, dev=True)

    assert settings.typing_indicator is True
    assert build_container(settings).turn_policy().typing_indicator is True


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("off", False), ("TRUE", True)])
def test_typing_indicator_setting_reaches_the_turn_policy(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"TYPING_INDICATOR": raw}, dev=True)

    assert settings.typing_indicator is expected
    assert build_container(settings).turn_policy().typing_indicator is expected


def test_a_typing_indicator_that_is_not_a_boolean_is_named() -> None:
    with pytest.raises(ConfigError, match=r"TYPING_INDICATOR: must be true or false, got 'sometimes'"):
        Settings.from_env({"TYPING_INDICATOR": "sometimes"}, dev=True)
