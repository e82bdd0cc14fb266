"""What one webhook delivery carried: inbound messages, status reports, what was rejected and what was
ignored. The bounds of what is stored from a delivery (`domain.limits`) are applied here, as the
channels' readers hand over what they read, so that every channel keeps the same ones."""

from __future__ import annotations

import enum

from attrs import Factory, define, evolve, frozen

from domain import limits
from domain.messages import BusinessEcho, CustomerDeletion, DeliveryReport, InboundMessage
from entrypoints.http.json_input import json_depth, json_size

#: Longest reason or detail of an ignored item put in a log line.
_LOGGED = 1_000


class IgnoredKind(enum.StrEnum):
    OBJECT = "object"  # a webhook object (product) we do not serve
    ENTRY = "entry"  # an entry or change we cannot read
    FIELD = "field"  # a subscription field other than `messages`
    PLATFORM_ERROR = "platform_error"  # `value.errors`: account- or app-level errors
    STATUS = "status"  # a status we cannot read or map
    INSTAGRAM = "instagram"


@frozen
class Ignored:
    """Something in a delivery that is logged and skipped; it does not change the 200 answer."""

    kind: IgnoredKind
    reason: str
    detail: str | None = None


@frozen
class Rejected:
    """A customer's message that is not taken: unreadable, or a field over its bound. It is kept aside
    with the delivery; `phone_number_id` and `platform_message_id` say which, as far as they are known."""

    reason: str
    phone_number_id: str | None = None
    platform_message_id: str | None = None


@frozen
class Delivery:
    """Everything one webhook POST carried, in the order it appeared."""

    inbound: tuple[InboundMessage, ...] = ()
    reports: tuple[DeliveryReport, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    echoes: tuple[BusinessEcho, ...] = ()
    deletions: tuple[CustomerDeletion, ...] = ()  # messages the customer unsent


@define
class Collector:
    """A `Delivery` in the making: the channels' readers add to it as they go through the entries."""

    inbound: list[InboundMessage] = Factory(list)
    reports: list[DeliveryReport] = Factory(list)
    ignored: list[Ignored] = Factory(list)
    rejected: list[Rejected] = Factory(list)
    echoes: list[BusinessEcho] = Factory(list)
    deletions: list[CustomerDeletion] = Factory(list)

    def ignore(self, kind: IgnoredKind, reason: str, detail: str | None = None) -> None:
        self.ignored.append(Ignored(kind, reason[:_LOGGED], None if detail is None else detail[:_LOGGED]))

    def reject(self, reason: str, phone_number_id: str | None = None, platform_message_id: str | None = None) -> None:
        self.rejected.append(Rejected(reason, phone_number_id, platform_message_id))

    def add_inbound(self, message: InboundMessage) -> None:
        """Take a customer's message, its name and skip reason cut to their bounds; reject it when an id,
        its type, its text or its raw JSON is over its bound (cutting those would change what it is)."""
        over = _over_bound(message)
        if over is not None:
            self.reject(over, message.phone_number_id, message.platform_message_id)
            return
        name, reason = message.customer_name, message.skip_reason
        self.inbound.append(
            evolve(
                message,
                customer_name=None if name is None else name[: limits.CUSTOMER_NAME],
                skip_reason=None if reason is None else reason[: limits.FAILURE_REASON],
            )
        )

    def add_echo(self, echo: BusinessEcho) -> None:
        """Take a message the business sent from its own app; reject it when a field is over its bound."""
        over = _over_bound(echo)
        if over is not None:
            self.reject(over, echo.phone_number_id, echo.platform_message_id)
            return
        self.echoes.append(echo)

    def add_report(self, report: DeliveryReport, path: str) -> None:
        """Take a status report, the platform's error cut to its bounds; ignore it when its ids are longer
        than any of ours, for then it cannot be about one of our messages."""
        if (
            len(report.phone_number_id) > limits.CHANNEL_ID
            or len(report.platform_message_id) > limits.PLATFORM_MESSAGE_ID
        ):
            self.ignore(IgnoredKind.STATUS, "not_ours", f"{path}: an id longer than any of ours")
            return
        code, reason = report.error_code, report.error_reason
        self.reports.append(
            evolve(
                report,
                error_code=None if code is None else code[: limits.FAILURE_CODE],
                error_reason=None if reason is None else reason[: limits.FAILURE_REASON],
            )
        )

    def delivery(self) -> Delivery:
        return Delivery(
            tuple(self.inbound),
            tuple(self.reports),
            tuple(self.ignored),
            tuple(self.rejected),
            tuple(self.echoes),
            tuple(self.deletions),
        )


_BOUNDED_TEXTS = (
    ("phone_number_id", limits.CHANNEL_ID),
    ("platform_message_id", limits.PLATFORM_MESSAGE_ID),
    ("customer_id", limits.CUSTOMER_ID),
    ("content_type", limits.CONTENT_TYPE),
    ("text", limits.CUSTOMER_TEXT),
)


def _over_bound(message: InboundMessage | BusinessEcho) -> str | None:
    """Why `message` is over a bound, or None."""
    for name, limit in _BOUNDED_TEXTS:
        value: str | None = getattr(message, name)
        if value is not None and len(value) > limit:
            return f"too_long:{name} ({len(value)} characters, at most {limit})"
    depth = json_depth(message.raw)
    if depth > limits.RAW_MESSAGE_DEPTH:
        return f"too_deep:raw ({depth} levels, at most {limits.RAW_MESSAGE_DEPTH})"
    size = json_size(message.raw)
    if size > limits.RAW_MESSAGE_BYTES:
        return f"too_long:raw ({size} bytes, at most {limits.RAW_MESSAGE_BYTES})"
    return None
