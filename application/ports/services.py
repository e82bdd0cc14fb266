"""Ports to the outside world other than storage: queue, locks, caches, AI, channels, clock, ids."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from attrs import frozen

from domain.channels import ChannelType
from domain.credits import Credits
from domain.tenancy import Channel, Route
from domain.turns import AIReply


class QueueUnavailable(Exception):
    """The job queue could not take a job. Stored work is picked up by the recovery sweep later."""


class JobQueue(Protocol):
    def enqueue_scope(self, scope_key: str, *, correlation_id: str | None = None, force: bool = False) -> None:
        """Ask a worker to process the pending work of one ordering scope. Raises QueueUnavailable.

        A job that is already waiting for the scope (not yet started) covers new work too, so unless
        `force` none is added; the job calls `taken` as it starts, after which work needs a new job.
        """

    def taken(self, scope_key: str) -> None:
        """A job for the scope has started: the next trigger must queue a new one."""


class LockHandle(Protocol):
    @property
    def lost(self) -> bool:
        """True once the lock could not be renewed (expired or taken over)."""

    def release(self) -> None:
        """Release the lock if, and only if, this handle still holds it."""


class Locks(Protocol):
    def acquire(self, key: str) -> LockHandle | None:
        """Take the lock on `key` without waiting; None when someone else holds it.

        The lock expires by itself when its holder dies; the adapter renews it while held.
        """

    def is_held(self, key: str) -> bool:
        """Whether somebody holds the lock now (a hint: it may change right after)."""


class RouteCache(Protocol):
    """Cache-aside for channel → (channel, agent). Failures of the cache behave as misses."""

    def get(self, phone_number_id: str) -> Route | None: ...

    def put(self, route: Route) -> None: ...

    def invalidate(self, phone_number_id: str) -> None: ...


class BalanceCache(Protocol):
    """Cache-aside for credit balances, keyed by user. Failures of the cache behave as misses."""

    def get(self, user_id: str) -> Credits | None: ...

    def put(self, credits: Credits) -> None: ...

    def invalidate(self, user_id: str) -> None: ...


@frozen
class AIRequest:
    prompt_id: str
    prompt_version: str | None
    openai_conversation_id: str
    inputs: tuple[str, ...]
    #: The last conversation item we know was ours; lets the adapter find a reply that landed
    #: although the call that asked for it failed (timeouts are ambiguous).
    after_item_id: str | None = None
    #: True when an earlier attempt of this turn may have reached OpenAI (resumed after a crash).
    resumed: bool = False
    #: (role, text) the AI is told before `inputs`: what happened in the conversation since its last
    #: answer that was not for it (`domain.handoff.ai_context`).
    context: tuple[tuple[str, str], ...] = ()


class AIRequestFailed(Exception):
    """The AI could not answer, after the retries worth making."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class AIResponder(Protocol):
    #: Shown on replies and in logs; the offline responder says it is offline.
    label: str

    @property
    def available(self) -> bool:
        """False while the AI is being waited out after repeated failures (an outage): no turn should
        start, as its call would fail at once."""

    def start_conversation(self, *, metadata: dict[str, str]) -> str:
        """Create the AI-side conversation for one customer conversation. Raises AIRequestFailed."""

    def respond(self, request: AIRequest) -> AIReply:
        """Answer the inputs in the conversation, retrying what is worth retrying. Raises AIRequestFailed:
        `retryable` when the AI could not be reached or kept failing (an outage: ask again later), not
        when it refused the request itself."""


class DeliveryFailed(Exception):
    """The channel refused or could not take a message. `code` is the platform's own error code.

    `retry_safe`: the channel certainly did not take it and asked to be tried again later (a rate
    limit, a short downtime, a connection never made); sending it again cannot reach the customer twice.
    """

    def __init__(
        self, reason: str, *, code: str | None = None, details: str | None = None, retry_safe: bool = False
    ) -> None:
        super().__init__(f"{reason} (code {code})" if code else reason)
        self.reason = reason
        self.code = code
        self.details = details
        self.retry_safe = retry_safe


class ChannelSender(Protocol):
    @property
    def available(self) -> bool:
        """False while the platform is being waited out after repeated failures (an outage)."""

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        """Send one text message; returns the platform's message id. Raises DeliveryFailed. `human_agent`:
        a person's reply after the service window, sent with the platform's human-agent tag."""

    def mark_read(self, channel: Channel, platform_message_id: str, *, typing: bool = False) -> None:
        """Tell the customer their message was read. Raises DeliveryFailed.

        `typing`: show the customer that a reply is being written, in the same call where the platform
        allows it (WhatsApp: the read receipt carries the indicator). A sender without one ignores it."""


class ChannelSenders(Protocol):
    def for_type(self, channel_type: ChannelType) -> ChannelSender:
        """The sender for a channel type. Raises DeliveryFailed when none is configured for it."""

    def available(self, channel_type: ChannelType) -> bool:
        """False while the sender of that type is being waited out (a channel without a sender is
        "available": a send then fails at once, saying so)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""

    def sleep(self, seconds: float) -> None:
        """Wait (a test clock moves on instead)."""


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new unique id such as `usr_3f9a…`."""

    def new_secret(self) -> str:
        """A new high-entropy secret (API keys)."""
