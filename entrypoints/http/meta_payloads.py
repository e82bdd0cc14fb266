"""Meta webhook deliveries read into domain values: the pure part of the webhook, no I/O.

Meta's payloads are read tolerantly (STYLE.md, "Edges"): only the keys we use are described, unknown
keys are ignored, and anything odd inside a delivery is recorded as `Ignored` instead of failing the
whole delivery, because a non-200 answer makes Meta redeliver to every subscribed app. Only a body
whose top level is unusable raises `MalformedDelivery`.
"""

from __future__ import annotations

import enum
import keyword
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from attrs import AttrsInstance, Factory, define, frozen
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, override

from domain.messages import DeliveryReport, InboundMessage, MessageStatus

_T = TypeVar("_T")
_AttrsClass = TypeVar("_AttrsClass", bound=AttrsInstance)


class MalformedDelivery(ValueError):
    """The body is JSON but not a webhook delivery at all; the HTTP layer answers 400."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{message} @ {field_path}")
        self.field_path = field_path
        self.message = message


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


# --- the parts of Meta's envelopes we read --------------------------------------------------------
# Items that may be unreadable one by one are kept as `tuple[object, ...]` and structured singly,
# so one bad message does not cost the others. A field name with a trailing underscore stands for a
# JSON key that is a Python keyword (`from_` is "from").


@frozen
class _WhatsAppEntry:
    changes: tuple[object, ...] = ()
    id: str = ""


@frozen
class _WhatsAppChange:
    field: str
    value: object = None


@frozen
class _Metadata:
    phone_number_id: str


@frozen
class _WhatsAppValue:
    """The `value` of a `messages` change."""

    metadata: _Metadata
    contacts: tuple[object, ...] = ()
    messages: tuple[object, ...] = ()
    statuses: tuple[object, ...] = ()
    errors: tuple[object, ...] = ()


@frozen
class _Profile:
    name: str | None = None


@frozen
class _Contact:
    wa_id: str = ""
    user_id: str | None = None  # business-scoped user id (BSUID)
    profile: _Profile | None = None


@frozen
class _Text:
    body: str


@frozen
class _Reply:
    title: str
    description: str | None = None


@frozen
class _Interactive:
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


@frozen
class _Button:
    text: str


@frozen
class _WhatsAppMessage:
    id: str
    timestamp: datetime
    type: str
    from_: str = ""  # may be empty for a customer known only by username (BSUID)
    from_user_id: str | None = None
    text: _Text | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None


@frozen
class _ErrorData:
    details: str | None = None


@frozen
class _Error:
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: _ErrorData | None = None

    def describe(self) -> str | None:
        head = self.title or self.message
        details = self.error_data.details if self.error_data else None
        if head and details:
            return f"{head}: {details}"
        return head or details


@frozen
class _WhatsAppStatus:
    id: str
    status: str
    timestamp: datetime
    errors: tuple[_Error, ...] = ()


@frozen
class _InstagramEntry:
    id: str = ""
    messaging: tuple[object, ...] = ()
    standby: tuple[object, ...] = ()  # events for a thread another app controls (handover protocol)


# --- the converter ---------------------------------------------------------------------------------


def _strict_str(value: object, _: type) -> str:
    # cattrs' default hook would turn a misplaced object into its repr; a wrong type is a bad payload.
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _unix_seconds(value: object, _: type) -> datetime:
    """Meta's WhatsApp timestamps: Unix seconds, sent as a string of digits."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected Unix seconds, got {type(value).__name__}")
    if isinstance(value, str) and not value.isdigit():
        raise ValueError(f"expected Unix seconds, got {value!r}")
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(f"Unix seconds out of range: {value!r}") from error


def _is_variadic_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _json_array_only(type_: Any, converter: cattrs.BaseConverter) -> Callable[[object, Any], tuple[object, ...]]:
    # The default tuple hook iterates anything iterable: a string or an object would become its items.
    structure_items = homogenous_tuple_structure_factory(type_, converter)

    def structure(value: object, _: Any) -> tuple[object, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        result: tuple[object, ...] = structure_items(value, type_)
        return result

    return structure


def _json_object_only(cls: type[_AttrsClass], converter: cattrs.Converter) -> Callable[[object, Any], _AttrsClass]:
    renames: dict[str, Any] = {
        field.name: override(rename=field.name[:-1])
        for field in attrs.fields(cls)
        if field.name.endswith("_") and keyword.iskeyword(field.name[:-1])
    }
    structure_fields = make_dict_structure_fn(cls, converter, **renames)

    def structure(value: object, _: Any) -> _AttrsClass:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return structure_fields(value, cls)

    return structure


_converter = cattrs.Converter()
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(datetime, _unix_seconds)
_converter.register_structure_hook_func(lambda type_: type_ is object, lambda value, _: value)
_converter.register_structure_hook_factory(_is_variadic_tuple, _json_array_only)
_converter.register_structure_hook_factory(attrs.has, _json_object_only)


class _Unreadable(Exception):
    """One part of a delivery could not be read; `detail` says where and why (cattrs' words)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _read(value: object, cls: type[_T], path: str) -> _T:
    try:
        return _converter.structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as error:
        raise _Unreadable("; ".join(cattrs.transform_error(error, path))) from error


# --- reading a delivery ------------------------------------------------------------------------------


@define
class _Collector:
    inbound: list[InboundMessage] = Factory(list)
    reports: list[DeliveryReport] = Factory(list)
    ignored: list[Ignored] = Factory(list)

    def ignore(self, kind: IgnoredKind, reason: str, detail: str | None = None) -> None:
        self.ignored.append(Ignored(kind, reason, detail))

    def delivery(self) -> Delivery:
        return Delivery(tuple(self.inbound), tuple(self.reports), tuple(self.ignored))


def parse_delivery(payload: object) -> Delivery:
    """Read one webhook POST body (already JSON-decoded) into inbound messages, status reports and
    the things deliberately ignored. Raises MalformedDelivery only when the top level is unusable."""
    if isinstance(payload, list) and len(payload) == 1:
        # Meta's Instagram examples show the delivery wrapped in an array; tolerate that form.
        payload = payload[0]
    if not isinstance(payload, Mapping):
        raise MalformedDelivery("$", f"expected a JSON object, got {type(payload).__name__}")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedDelivery("$.entry", f"expected a JSON array, got {type(entries).__name__}")

    collected = _Collector()
    object_name = payload.get("object")
    read_entry = _ENTRY_READERS.get(object_name) if isinstance(object_name, str) else None
    if read_entry is None:
        collected.ignore(IgnoredKind.OBJECT, f"unknown_object:{object_name}")
        return collected.delivery()
    for index, entry in enumerate(entries):
        read_entry(entry, f"$.entry[{index}]", collected)
    return collected.delivery()


def _read_whatsapp_entry(raw_entry: object, path: str, collected: _Collector) -> None:
    try:
        entry = _read(raw_entry, _WhatsAppEntry, path)
    except _Unreadable as error:
        collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
        return
    for index, raw_change in enumerate(entry.changes):
        change_path = f"{path}.changes[{index}]"
        try:
            change = _read(raw_change, _WhatsAppChange, change_path)
            if change.field != "messages":
                collected.ignore(
                    IgnoredKind.FIELD, f"unhandled_field:{change.field}", f"{change_path} (WABA {entry.id})"
                )
                continue
            value = _read(change.value, _WhatsAppValue, f"{change_path}.value")
        except _Unreadable as error:
            collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
            continue
        _read_whatsapp_value(value, f"{change_path}.value", collected)


def _read_whatsapp_value(value: _WhatsAppValue, path: str, collected: _Collector) -> None:
    phone_number_id = value.metadata.phone_number_id
    contacts = []
    for index, raw_contact in enumerate(value.contacts):
        try:
            contacts.append(_read(raw_contact, _Contact, f"{path}.contacts[{index}]"))
        except _Unreadable:
            # A contact only adds the customer's name or BSUID; the message itself still counts.
            continue
    for index, raw_message in enumerate(value.messages):
        try:
            collected.inbound.append(
                _inbound_message(raw_message, phone_number_id, contacts, f"{path}.messages[{index}]")
            )
        except _Unreadable as error:
            collected.ignore(IgnoredKind.MESSAGE, "malformed", error.detail)
    for index, raw_status in enumerate(value.statuses):
        status_path = f"{path}.statuses[{index}]"
        try:
            status = _read(raw_status, _WhatsAppStatus, status_path)
        except _Unreadable as error:
            collected.ignore(IgnoredKind.STATUS, "malformed", error.detail)
            continue
        report = _delivery_report(status, phone_number_id)
        if report is None:
            collected.ignore(IgnoredKind.STATUS, f"unknown_status:{status.status}", f"{status_path} ({status.id})")
        else:
            collected.reports.append(report)
    for index, raw_error in enumerate(value.errors):
        error_path = f"{path}.errors[{index}]"
        try:
            platform_error = _read(raw_error, _Error, error_path)
        except _Unreadable as error:
            collected.ignore(IgnoredKind.PLATFORM_ERROR, "malformed", error.detail)
            continue
        collected.ignore(IgnoredKind.PLATFORM_ERROR, f"platform_error:{platform_error.code}", platform_error.describe())


def _inbound_message(raw_message: object, phone_number_id: str, contacts: list[_Contact], path: str) -> InboundMessage:
    if not isinstance(raw_message, dict):
        raise _Unreadable(f"invalid type (expected a JSON object, got {type(raw_message).__name__}) @ {path}")
    message = _read(raw_message, _WhatsAppMessage, path)
    contact = _contact_of(message, contacts)
    customer_id = message.from_ or message.from_user_id
    if not customer_id and contact is not None:
        customer_id = contact.user_id or contact.wa_id
    if not customer_id:
        raise _Unreadable(f"no sender: empty `from` and no contact with a user_id or wa_id @ {path}")
    text, skip_reason = _answerable_text(message, path)
    return InboundMessage(
        phone_number_id=phone_number_id,
        platform_message_id=message.id,
        customer_id=customer_id,
        customer_name=contact.profile.name if contact and contact.profile else None,
        content_type=message.type,
        text=text,
        skip_reason=skip_reason,
        sent_at=message.timestamp,
        raw=raw_message,
    )


def _contact_of(message: _WhatsAppMessage, contacts: list[_Contact]) -> _Contact | None:
    for contact in contacts:
        if (message.from_ and contact.wa_id == message.from_) or (
            message.from_user_id and contact.user_id == message.from_user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _answerable_text(message: _WhatsAppMessage, path: str) -> tuple[str | None, str | None]:
    """The text the agent answers, or None and the reason the message is recorded and skipped."""
    if message.type == "text":
        text = _payload(message.text, message.type, path).body
    elif message.type == "button":
        # A quick-reply button of a template: the button's label is what the customer "said".
        text = _payload(message.button, message.type, path).text
    elif message.type == "interactive":
        interactive = _payload(message.interactive, message.type, path)
        if interactive.type == "button_reply":
            text = _payload(interactive.button_reply, "interactive.button_reply", path).title
        elif interactive.type == "list_reply":
            row = _payload(interactive.list_reply, "interactive.list_reply", path)
            text = f"{row.title} — {row.description}" if row.description else row.title
        else:
            return None, f"unsupported_interactive:{interactive.type}"
    else:
        return None, f"unsupported_type:{message.type}"
    if not text.strip():
        return None, "empty_text"
    return text, None


def _payload(part: _T | None, name: str, path: str) -> _T:
    if part is None:
        raise _Unreadable(f"`{name}` message without its `{name}` object @ {path}")
    return part


_STATUSES = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "played": MessageStatus.PLAYED,
    "failed": MessageStatus.FAILED,
}


def _delivery_report(status: _WhatsAppStatus, phone_number_id: str) -> DeliveryReport | None:
    reported = _STATUSES.get(status.status)
    if reported is None:
        return None
    error = status.errors[0] if status.errors else None
    return DeliveryReport(
        phone_number_id=phone_number_id,
        platform_message_id=status.id,
        status=reported,
        at=status.timestamp,
        error_code=str(error.code) if error and error.code is not None else None,
        error_reason=error.describe() if error else None,
    )


def _read_instagram_entry(raw_entry: object, path: str, collected: _Collector) -> None:
    try:
        entry = _read(raw_entry, _InstagramEntry, path)
    except _Unreadable as error:
        collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
        return
    for list_name, events in (("messaging", entry.messaging), ("standby", entry.standby)):
        for index in range(len(events)):
            collected.ignore(IgnoredKind.INSTAGRAM, "channel not handled yet", f"{path}.{list_name}[{index}]")


_ENTRY_READERS: dict[str, Callable[[object, str, _Collector], None]] = {
    "whatsapp_business_account": _read_whatsapp_entry,
    "instagram": _read_instagram_entry,
}
