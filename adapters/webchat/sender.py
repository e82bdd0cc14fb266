"""ChannelSender for the web chat widget: a reply is "sent" once it is stored for the visitor to read.

The part is in the database already (the turn stored it before its send); sending it is signalling the
visitor's open widgets to read their timeline again. Nothing can refuse it, and a lost signal only means
the widget finds the reply when its stream next reads (domain/webchat.py, `Timeline`).
"""

from __future__ import annotations

from application.ports.services import IdGenerator
from application.ports.webchat import Signal, VisitorSignals
from domain.tenancy import Channel
from domain.webchat import visitor_of


class WebchatSender:
    available = True

    def __init__(self, signals: VisitorSignals, ids: IdGenerator) -> None:
        self._signals = signals
        self._ids = ids

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        self._signals.notify(channel.phone_number_id, recipient_id, Signal.MESSAGE)
        return self._ids.new_id("wcr")

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        if typing:
            self._signals.notify(channel.phone_number_id, visitor_of(platform_message_id), Signal.TYPING)
