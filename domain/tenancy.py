"""Tenants (users), their channels (`phone_numbers`) and the agent linked to each channel."""

from __future__ import annotations

import re
from datetime import datetime

from attrs import evolve, field, frozen

from domain import limits
from domain.channels import BotState, ChannelPolicy, ChannelType, policy_for
from domain.errors import InvalidTransition, ValidationFailed
from domain.webchat import check_origins, origin_allowed

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
    #: Left out of repr: a channel in a traceback or a log line must not carry its token.
    access_token: str = field(repr=False)
    display_name: str | None
    created_at: datetime
    bot: BotState = BotState.ACTIVE
    #: A deleted channel keeps its history; it is not listed, and webhooks for it are ignored.
    deleted_at: datetime | None = None
    #: Web chat: the sites whose pages may use the widget (`domain.webchat.check_origins`); empty: any site.
    allowed_origins: tuple[str, ...] = ()

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def delete(self, now: datetime) -> Channel:
        if self.deleted_at is not None:
            raise InvalidTransition(f"channel {self.phone_number_id} is deleted already")
        return evolve(self, deleted_at=now)

    @property
    def policy(self) -> ChannelPolicy:
        return policy_for(self.type)

    @property
    def masked_token(self) -> str:
        """What the API shows of the access token: its last four characters, enough to tell which token
        is stored; nothing of a token of 8 characters or fewer, where four would be half of it."""
        token = self.access_token
        if len(token) <= 8:
            return "****"
        return f"…{token[-4:]}"

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a browser on `origin` may use this channel's widget."""
        return origin_allowed(self.allowed_origins, origin)

    def update(
        self,
        *,
        display_name: str | None = None,
        access_token: str | None = None,
        bot: BotState | None = None,
        allowed_origins: tuple[str, ...] | None = None,
    ) -> Channel:
        """The channel after a tenant's change: a new name, a rotated token, the bot paused or resumed, the
        widget's sites. An empty name clears it; a token must not be empty where the channel needs one."""
        changed = self
        if allowed_origins is not None:
            if self.type is not ChannelType.WEBCHAT and allowed_origins:
                raise ValidationFailed("allowed_origins is for webchat channels only", field="allowed_origins")
            changed = evolve(changed, allowed_origins=check_origins(allowed_origins))
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
    """An OpenAI dashboard prompt answering one channel, or none yet (`phone_number_id` None: unlinked).

    A deleted agent is kept (its conversations are history), unlinked, and is not found by the API.
    """

    agent_id: str
    user_id: str
    phone_number_id: str | None
    name: str
    prompt_id: str
    prompt_version: str | None
    created_at: datetime
    deleted_at: datetime | None = None
    #: The OpenAI dashboard prompt that reads this agent's conversations for lead data; None: the built-in
    #: instructions (`domain.extraction.BUILT_IN_INSTRUCTIONS`).
    extraction_prompt_id: str | None = None

    @staticmethod
    def check_name(name: str) -> str:
        name = name.strip()
        if not name:
            raise ValidationFailed("name must not be empty", field="name")
        return name

    @staticmethod
    def check_prompt_id(prompt_id: str) -> str:
        prompt_id = prompt_id.strip()
        if not prompt_id.startswith("pmpt_"):
            raise ValidationFailed("prompt_id must be an OpenAI prompt id (pmpt_…)", field="prompt_id")
        return prompt_id

    @staticmethod
    def check_prompt_version(prompt_version: str | None) -> str | None:
        """None, or an empty text: the prompt's latest version."""
        return (prompt_version or "").strip() or None

    def edit(self, *, name: str, prompt_id: str, prompt_version: str | None) -> Agent:
        """Another prompt or name: takes effect on the next turn, no conversation is archived."""
        return evolve(
            self,
            name=self.check_name(name),
            prompt_id=self.check_prompt_id(prompt_id),
            prompt_version=self.check_prompt_version(prompt_version),
        )

    def extract_with(self, extraction_prompt_id: str | None) -> Agent:
        """Another extraction prompt (None or empty: the built-in instructions), from the next extraction on."""
        prompt_id = (extraction_prompt_id or "").strip()
        if not prompt_id:
            return evolve(self, extraction_prompt_id=None)
        if not prompt_id.startswith("pmpt_"):
            raise ValidationFailed(
                "extraction_prompt_id must be an OpenAI prompt id (pmpt_…)", field="extraction_prompt_id"
            )
        return evolve(self, extraction_prompt_id=prompt_id)

    def link(self, phone_number_id: str | None) -> Agent:
        """The agent answering `phone_number_id` (None: no channel)."""
        if self.deleted_at is not None:
            raise InvalidTransition(f"agent {self.agent_id} is deleted")
        return evolve(self, phone_number_id=phone_number_id)

    def delete(self, now: datetime) -> Agent:
        """Unlinked and deleted; kept for the conversations it had."""
        if self.deleted_at is not None:
            raise InvalidTransition(f"agent {self.agent_id} is deleted already")
        return evolve(self, phone_number_id=None, deleted_at=now)


@frozen
class Route:
    """Everything the pipeline needs to know about a channel to answer on it (cached)."""

    channel: Channel
    agent: Agent | None

    @property
    def user_id(self) -> str:
        return self.channel.user_id
