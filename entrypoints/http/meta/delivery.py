"""What one webhook delivery carried: inbound messages, status reports and what was ignored."""

from __future__ import annotations

import enum

from attrs import Factory, define, frozen

from domain.messages import DeliveryReport, InboundMessage


class IgnoredKind(enum.StrEnum):
    OBJECT = "object"  # a webhook object (product) we do not serve
    ENTRY = "entry"  # an entry or change we cannot read
    FIELD = "field"  # a subscription field other than `messages`
    PLATFORM_ERROR = "platform_error"  # `value.errors`: account- or app-level errors
    MESSAGE = "message"  # an inbound message we cannot read
    STATUS = "status"  # a status we cannot read or map
    INSTAGRAM = "instagram"


@frozen
class Ignored:
    """Something in a delivery that is logged and skipped; it does not change the 200 answer."""

    kind: IgnoredKind
    reason: str
    detail: str | None = None


@frozen
class Delivery:
    """Everything one webhook POST carried, in the order it appeared."""

    inbound: tuple[InboundMessage, ...] = ()
    reports: tuple[DeliveryReport, ...] = ()
    ignored: tuple[Ignored, ...] = ()


@define
class Collector:
    """A `Delivery` in the making: the channels' readers add to it as they go through the entries."""

    inbound: list[InboundMessage] = Factory(list)
    reports: list[DeliveryReport] = Factory(list)
    ignored: list[Ignored] = Factory(list)

    def ignore(self, kind: IgnoredKind, reason: str, detail: str | None = None) -> None:
        self.ignored.append(Ignored(kind, reason, detail))

    def delivery(self) -> Delivery:
        return Delivery(tuple(self.inbound), tuple(self.reports), tuple(self.ignored))
