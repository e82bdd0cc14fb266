"""ChannelSender for Instagram Direct (Instagram API with Instagram Login: `POST /{ig_account_id}/messages`
on `INSTAGRAM_API_BASE_URL`, with the account's Instagram user token).

It is the WhatsApp sender with Instagram's request and answer bodies: the same single attempt per
call, the same reading of Graph errors (codes stored; retry-safe only for Meta's rate-limit and
temporary-downtime codes) and the same circuit, which the container shares between the two, since both
are Meta's Graph platform.

Read receipts: the `mark_seen` sender action is not documented for Instagram Login
(`../shared/reference/meta-platforms.md` §9), so the Instagram policy sends none and `mark_read` does
nothing.
"""

from __future__ import annotations

from typing import Any

from adapters.meta.whatsapp import WhatsAppCloudSender
from application.ports.services import DeliveryFailed
from domain.tenancy import Channel

#: What a person's reply after the 24-hour window carries (Meta allows it for 7 days, human agents only).
HUMAN_AGENT_TAG = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}


class InstagramSender(WhatsAppCloudSender):
    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        body: dict[str, Any] = {"recipient": {"id": recipient_id}, "message": {"text": text}}
        if human_agent:
            body |= HUMAN_AGENT_TAG
        return self._send(channel, body)

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        # `typing` is accepted as main's port has it (the WhatsApp typing indicator); nothing is sent.
        return None

    def _send(self, channel: Channel, body: dict[str, Any]) -> str:
        answer = self._post(channel, body)
        message_id = answer.get("message_id") if isinstance(answer, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryFailed(f"the Graph API accepted the message but returned no message id: {answer!r:.200}")
        return message_id
