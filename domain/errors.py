"""Domain and application errors. The HTTP layer maps each class to one status code."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a rule of the product was broken. `code` is machine-readable."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class ValidationFailed(DomainError):
    code = "validation_failed"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidTransition(Conflict):
    """Something was asked of an entity that its current state does not allow (a turn answered twice,
    a part sent that was never claimed). A bug or a race lost, never a customer's doing."""

    code = "invalid_transition"


class InsufficientCredits(Conflict):
    """More credits were asked for than the tenant has available."""

    code = "insufficient_credits"


class RetryRefused(Conflict):
    """A failed message may not be retried now; `code` says why (the conversation is archived, the
    service window is closed, the reply may have gone out already...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConversationArchived(Conflict):
    """The conversation is archived: it takes no new messages and no change of who answers."""

    code = "conversation_archived"


class OutsideServiceWindow(Conflict):
    """The channel allows no free-form message to the customer now (WhatsApp: 24 h after their last message)."""

    code = "outside_service_window"


class ChannelRefused(DomainError):
    """The channel's platform refused or could not take a message; it was stored as failed (`message_id`)."""

    code = "channel_refused"

    def __init__(self, message: str, *, message_id: int, failure_code: str | None) -> None:
        super().__init__(message)
        self.message_id = message_id
        self.failure_code = failure_code


class OriginNotAllowed(Forbidden):
    """A page on a site the web chat channel does not list tried to use its widget."""

    code = "origin_not_allowed"


class RateLimited(DomainError):
    """Too many requests for one visitor or one widget; `retry_after_s` says when one is allowed again."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
