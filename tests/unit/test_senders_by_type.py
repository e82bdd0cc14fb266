"""Choosing the channel sender by the channel's type."""

from __future__ import annotations

import pytest

from adapters.meta.senders import SendersByType
from application.ports.services import DeliveryFailed
from domain.channels import ChannelType
from domain.tenancy import Channel


class NamedSender:
    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        return "id"

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        """Nothing to mark in this test."""


def test_the_sender_registered_for_the_type_is_returned() -> None:
    whatsapp, webchat = NamedSender(), NamedSender()
    senders = SendersByType({ChannelType.WHATSAPP: whatsapp, ChannelType.WEBCHAT: webchat})

    assert senders.for_type(ChannelType.WHATSAPP) is whatsapp
    assert senders.for_type(ChannelType.WEBCHAT) is webchat


def test_a_type_without_a_sender_fails_as_an_undeliverable_message_naming_it() -> None:
    senders = SendersByType({ChannelType.WHATSAPP: NamedSender()})

    with pytest.raises(
        DeliveryFailed, match=r"no sender is configured for instagram channels \(configured: whatsapp\)"
    ):
        senders.for_type(ChannelType.INSTAGRAM)
