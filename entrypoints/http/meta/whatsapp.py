"""WhatsApp Cloud API deliveries (`object: whatsapp_business_account`): messages, contacts, statuses, errors."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from attrs import frozen

from domain.messages import BusinessEcho, DeliveryReport, InboundMessage, MessageStatus
from entrypoints.http.meta.converter import Unreadable, read
from entrypoints.http.meta.delivery import Collector, IgnoredKind

_T = TypeVar("_T")

#: The webhook field of messages the business sent from the WhatsApp Business app (coexistence).
ECHOES_FIELD = "smb_message_echoes"


# --- the parts of Meta's envelope we read ------------------------------------------------------------
# Items that may be unreadable one by one are kept as `tuple[object, ...]` and read singly.


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
class _EchoValue:
    """The `value` of an `smb_message_echoes` change (WhatsApp Business app coexistence)."""

    metadata: _Metadata
    message_echoes: tuple[object, ...] = ()


@frozen
class _Echo:
    """A message the business sent from the WhatsApp Business app: `from` is the business, `to` the customer."""

    id: str
    timestamp: datetime
    type: str
    to: str
    text: _Text | None = None


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


# --- reading an entry --------------------------------------------------------------------------------


def read_entry(raw_entry: object, path: str, collected: Collector) -> None:
    try:
        entry = read(raw_entry, _WhatsAppEntry, path)
    except Unreadable as error:
        collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
        return
    for index, raw_change in enumerate(entry.changes):
        change_path = f"{path}.changes[{index}]"
        try:
            change = read(raw_change, _WhatsAppChange, change_path)
            if change.field == ECHOES_FIELD:
                echoes = read(change.value, _EchoValue, f"{change_path}.value")
                _read_echoes(echoes, f"{change_path}.value", collected)
                continue
            if change.field != "messages":
                collected.ignore(
                    IgnoredKind.FIELD, f"unhandled_field:{change.field}", f"{change_path} (WABA {entry.id})"
                )
                continue
            value = read(change.value, _WhatsAppValue, f"{change_path}.value")
        except Unreadable as error:
            collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
            continue
        _read_value(value, f"{change_path}.value", collected)


def _read_value(value: _WhatsAppValue, path: str, collected: Collector) -> None:
    phone_number_id = value.metadata.phone_number_id
    contacts = []
    for index, raw_contact in enumerate(value.contacts):
        try:
            contacts.append(read(raw_contact, _Contact, f"{path}.contacts[{index}]"))
        except Unreadable:
            # A contact only adds the customer's name or BSUID; the message itself still counts.
            continue
    for index, raw_message in enumerate(value.messages):
        try:
            collected.add_inbound(_inbound_message(raw_message, phone_number_id, contacts, f"{path}.messages[{index}]"))
        except Unreadable as error:
            # A customer's message we cannot read is one we cannot answer: kept aside, not only logged.
            collected.reject(f"unreadable: {error.detail}", phone_number_id, _message_id(raw_message))
    for index, raw_status in enumerate(value.statuses):
        status_path = f"{path}.statuses[{index}]"
        try:
            status = read(raw_status, _WhatsAppStatus, status_path)
        except Unreadable as error:
            collected.ignore(IgnoredKind.STATUS, "malformed", error.detail)
            continue
        report = _delivery_report(status, phone_number_id)
        if report is None:
            collected.ignore(IgnoredKind.STATUS, f"unknown_status:{status.status}", f"{status_path} ({status.id})")
        else:
            collected.add_report(report, status_path)
    for index, raw_error in enumerate(value.errors):
        error_path = f"{path}.errors[{index}]"
        try:
            platform_error = read(raw_error, _Error, error_path)
        except Unreadable as error:
            collected.ignore(IgnoredKind.PLATFORM_ERROR, "malformed", error.detail)
            continue
        collected.ignore(IgnoredKind.PLATFORM_ERROR, f"platform_error:{platform_error.code}", platform_error.describe())


def _read_echoes(value: _EchoValue, path: str, collected: Collector) -> None:
    phone_number_id = value.metadata.phone_number_id
    for index, raw_echo in enumerate(value.message_echoes):
        echo_path = f"{path}.message_echoes[{index}]"
        try:
            if not isinstance(raw_echo, dict):
                raise Unreadable(f"invalid type (expected a JSON object, got {type(raw_echo).__name__}) @ {echo_path}")
            echo = read(raw_echo, _Echo, echo_path)
            text = _payload(echo.text, echo.type, echo_path).body if echo.type == "text" else None
            if not echo.to:
                raise Unreadable(f"no customer: empty `to` @ {echo_path}")
        except Unreadable as error:
            # What the business said that we cannot read is kept aside: the conversation would miss it.
            collected.reject(f"unreadable_echo: {error.detail}", phone_number_id, _message_id(raw_echo))
            continue
        collected.add_echo(
            BusinessEcho(
                phone_number_id=phone_number_id,
                platform_message_id=echo.id,
                customer_id=echo.to,
                content_type=echo.type,
                text=text,
                sent_at=echo.timestamp,
                raw=raw_echo,
            )
        )


def _inbound_message(raw_message: object, phone_number_id: str, contacts: list[_Contact], path: str) -> InboundMessage:
    if not isinstance(raw_message, dict):
        raise Unreadable(f"invalid type (expected a JSON object, got {type(raw_message).__name__}) @ {path}")
    message = read(raw_message, _WhatsAppMessage, path)
    contact = _contact_of(message, contacts)
    customer_id = message.from_ or message.from_user_id
    if not customer_id and contact is not None:
        customer_id = contact.user_id or contact.wa_id
    if not customer_id:
        raise Unreadable(f"no sender: empty `from` and no contact with a user_id or wa_id @ {path}")
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


def _message_id(raw_message: object) -> str | None:
    """The id of a message that could not be read, if it has a readable one."""
    found = raw_message.get("id") if isinstance(raw_message, dict) else None
    return found if isinstance(found, str) else None


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
        raise Unreadable(f"`{name}` message without its `{name}` object @ {path}")
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
