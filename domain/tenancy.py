"""Tenants (users), their channels (`phone_numbers`) and the agent linked to each channel."""

from __future__ import annotations

import re
from datetime import datetime

from attrs import evolve, frozen

from domain import limits
from domain.channels import BotState, ChannelPolicy, ChannelType, policy_for
from domain.errors import ValidationFailed

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@frozen
class User:
    user_id: str
    email: str
    company_name: str | None
    api_key_hash: str
    created_at: datetime

    @staticmethod
    def check_email(email: str) -> str:
        email = email.strip()
        if not _EMAIL.match(email) or len(email) > limits.EMAIL:
            raise ValidationFailed("email must be a valid e-mail address", field="email")
        return email.lower()


@frozen
class Channel:
    """A customer channel of a tenant: a WhatsApp number, an Instagram account or a web chat widget.

    `phone_number_id` is Meta's id for the number (or the Instagram account id); web chat channels
    get a generated one. It is what webhooks are routed on. While `bot` is paused the AI answers none
    of the channel's conversations: a person from the team does.
    """

    phone_number_id: str
    user_id: str
    type: ChannelType
    external_number: str
    access_token: str
    display_name: str | None
    created_at: datetime
    bot: BotState = BotState.ACTIVE

    @property
    def policy(self) -> ChannelPolicy:
        return policy_for(self.type)

    @property
    def masked_token(self) -> str:
        """What the API shows of the access token: never the whole of it."""
        token = self.access_token
        if len(token) <= 8:
            return "****"
        return f"{token[:4]}…{token[-4:]}"

    def update(
        self, *, display_name: str | None = None, access_token: str | None = None, bot: BotState | None = None
    ) -> Channel:
        """The channel after a tenant's change: a new name, a rotated token, the bot paused or resumed.
        An empty name clears it; a token must not be empty where the channel needs one."""
        changed = self
        if display_name is not None:
            changed = evolve(changed, display_name=display_name.strip() or None)
        if access_token is not None:
            if not access_token.strip():
                raise ValidationFailed("access_token must not be empty", field="access_token")
            changed = evolve(changed, access_token=access_token.strip())
        if bot is not None:
            changed = evolve(changed, bot=bot)
        return changed


@frozen
class Agent:
    """An OpenAI dashboard prompt answering one channel."""

    agent_id: str
    user_id: str
    phone_number_id: str
    name: str
    prompt_id: str
    prompt_version: str | None
    created_at: datetime


@frozen
class Route:
    """Everything the pipeline needs to know about a channel to answer on it (cached)."""

    channel: Channel
    agent: Agent | None

    @property
    def user_id(self) -> str:
        return self.channel.user_id
