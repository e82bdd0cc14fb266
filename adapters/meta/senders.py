"""ChannelSenders: picks the sender adapter for a channel's type."""

from __future__ import annotations

from collections.abc import Mapping

from application.ports.services import ChannelSender, DeliveryFailed
from domain.channels import ChannelType


class SendersByType:
    def __init__(self, mapping: Mapping[ChannelType, ChannelSender]) -> None:
        self._senders = dict(mapping)

    def for_type(self, channel_type: ChannelType) -> ChannelSender:
        sender = self._senders.get(channel_type)
        if sender is None:
            # A DeliveryFailed, not a KeyError: the message is then stored as failed with this reason
            # (and can be retried once the wiring is fixed) instead of crashing the job over and over.
            configured = ", ".join(sorted(self._senders)) or "none"
            raise DeliveryFailed(f"no sender is configured for {channel_type} channels (configured: {configured})")
        return sender

    def available(self, channel_type: ChannelType) -> bool:
        sender = self._senders.get(channel_type)
        return sender is None or sender.available
