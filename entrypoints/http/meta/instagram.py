"""Instagram deliveries (`object: instagram`, Instagram API with Instagram Login): `entry[].messaging[]`
and `entry[].standby[]` events (`../shared/reference/meta-platforms.md` §4.2–4.3).

The channel is the Instagram professional account (`recipient.id` of a customer's message, `sender.id`
of an echo; kept in the channel's `phone_number_id`); the customer is the IGSID. Timestamps are Unix
milliseconds. What becomes of each event:

- a text message (or a quick reply, its text) is answered; a postback (icebreaker, button) is answered
  with its title, as WhatsApp answers a button's label;
- attachments, story replies, story mentions, unsupported media, messages to oneself (`is_self`) and any
  message in `standby[]` (another app controls the thread) are stored and skipped with a reason;
- `is_echo` (sent by the account): a `BusinessEcho`; one of our own sends is recognised by its `mid`
  once the worker stored it, and before that (the echo can beat Graph's answer to the worker) by being
  the very text of a part being sent to that customer (`BusinessEcho.is_our_send_in_flight`). The
  business's own messages from the Instagram app pause the conversation; the one it cannot tell apart,
  the business typing exactly the text of a reply being sent to that customer at that moment, is
  taken for ours;
- `is_deleted`: a `CustomerDeletion`: the stored message is skipped as `deleted_by_customer` if it still
  waits for an answer; one not stored yet is stored so, under its `mid`, and never answered;
- reactions, reads, edits, referrals and other standby events: logged as ignored, with the kind.
"""

from __future__ import annotations

from datetime import UTC, datetime

from attrs import frozen

from domain.messages import DELETED_BY_CUSTOMER, BusinessEcho, CustomerDeletion, InboundMessage
from entrypoints.http.meta.converter import Unreadable, read
from entrypoints.http.meta.delivery import Collector, IgnoredKind


@frozen
class _InstagramEntry:
    id: str = ""
    messaging: tuple[object, ...] = ()
    standby: tuple[object, ...] = ()  # events for a thread another app controls (handover protocol)


@frozen
class _Party:
    id: str


@frozen
class _Attachment:
    type: str = "unknown"


@frozen
class _Story:
    id: str | None = None


@frozen
class _ReplyTo:
    mid: str | None = None
    story: _Story | None = None


@frozen
class _Message:
    mid: str
    text: str | None = None
    attachments: tuple[_Attachment, ...] = ()
    is_echo: bool = False
    is_deleted: bool = False
    is_self: bool = False
    is_unsupported: bool = False
    reply_to: _ReplyTo | None = None


@frozen
class _Postback:
    mid: str
    title: str = ""
    payload: str | None = None


@frozen
class _Event:
    sender: _Party
    recipient: _Party
    timestamp: object
    message: object = None
    postback: object = None


#: The other kinds of events, logged when they come: they carry nothing to answer.
_OTHER_EVENTS = ("reaction", "read", "message_edit", "referral", "optin", "pass_thread_control", "take_thread_control")


def read_entry(raw_entry: object, path: str, collected: Collector) -> None:
    try:
        entry = read(raw_entry, _InstagramEntry, path)
    except Unreadable as error:
        collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
        return
    for list_name, events in (("messaging", entry.messaging), ("standby", entry.standby)):
        for index, raw_event in enumerate(events):
            _read_event(raw_event, f"{path}.{list_name}[{index}]", collected, standby=list_name == "standby")


def _read_event(raw_event: object, path: str, collected: Collector, *, standby: bool) -> None:
    try:
        event = read(raw_event, _Event, path)
        sent_at = _unix_milliseconds(event.timestamp, f"{path}.timestamp")
    except Unreadable as error:
        collected.ignore(IgnoredKind.INSTAGRAM, "malformed", error.detail)
        return
    if event.message is not None:
        _read_message(event, sent_at, path, collected, standby=standby)
    elif event.postback is not None:
        _read_postback(event, sent_at, path, collected, standby=standby)
    else:
        raw = raw_event if isinstance(raw_event, dict) else {}
        kind = next((name for name in _OTHER_EVENTS if name in raw), "unknown_event")
        collected.ignore(IgnoredKind.INSTAGRAM, f"{'standby:' if standby else ''}{kind}", path)


def _read_message(event: _Event, sent_at: datetime, path: str, collected: Collector, *, standby: bool) -> None:
    account, customer = event.recipient.id, event.sender.id
    message_path = f"{path}.message"
    try:
        message = read(event.message, _Message, message_path)
    except Unreadable as error:
        # A customer's message we cannot read is one we cannot answer: kept aside, not only logged.
        collected.reject(f"unreadable: {error.detail}", account, _mid(event.message))
        return
    raw = event.message if isinstance(event.message, dict) else {}
    if message.is_echo:
        # Sent by the account: `sender` is the business, `recipient` the customer.
        collected.add_echo(
            BusinessEcho(
                phone_number_id=event.sender.id,
                platform_message_id=message.mid,
                customer_id=event.recipient.id,
                content_type="text" if message.text is not None and not message.attachments else _kind(message),
                text=message.text,
                sent_at=sent_at,
                raw=raw,
            )
        )
        return
    text, skip_reason = _answerable_text(message)
    if standby and skip_reason is None:
        skip_reason = "standby"  # another app controls the thread: recorded, never answered
    if message.is_deleted:
        collected.deletions.append(CustomerDeletion(account, message.mid))
    collected.add_inbound(
        InboundMessage(
            phone_number_id=account,
            platform_message_id=message.mid,
            customer_id=customer,
            customer_name=None,
            content_type=_kind(message),
            text=text if skip_reason is None else None,
            skip_reason=skip_reason,
            sent_at=sent_at,
            raw=raw,
        )
    )


def _read_postback(event: _Event, sent_at: datetime, path: str, collected: Collector, *, standby: bool) -> None:
    account = event.recipient.id
    try:
        postback = read(event.postback, _Postback, f"{path}.postback")
    except Unreadable as error:
        collected.reject(f"unreadable: {error.detail}", account, _mid(event.postback))
        return
    skip_reason = "standby" if standby else ("empty_text" if not postback.title.strip() else None)
    collected.add_inbound(
        InboundMessage(
            phone_number_id=account,
            platform_message_id=postback.mid,
            customer_id=event.sender.id,
            customer_name=None,
            content_type="postback",
            text=postback.title if skip_reason is None else None,
            skip_reason=skip_reason,
            sent_at=sent_at,
            raw=event.postback if isinstance(event.postback, dict) else {},
        )
    )


def _kind(message: _Message) -> str:
    """The stored content type: `text`, or what the message carries instead."""
    if message.attachments:
        return message.attachments[0].type
    if message.reply_to is not None and message.reply_to.story is not None:
        return "story_reply"
    return "text" if message.text is not None else "unsupported"


def _answerable_text(message: _Message) -> tuple[str | None, str | None]:
    """The text the agent answers, or None and the reason the message is recorded and skipped."""
    if message.is_deleted:
        return None, DELETED_BY_CUSTOMER
    if message.is_self:
        return None, "self_message"
    if message.is_unsupported:
        return None, "unsupported_media"
    if message.attachments:
        return None, f"unsupported_type:{message.attachments[0].type}"
    if message.reply_to is not None and message.reply_to.story is not None:
        return None, "story_reply"
    if message.text is None or not message.text.strip():
        return None, "empty_text"
    return message.text, None


def _unix_milliseconds(value: object, path: str) -> datetime:
    """Instagram's timestamps: Unix milliseconds, as a JSON integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unreadable(f"expected Unix milliseconds, got {type(value).__name__} @ {path}")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise Unreadable(f"Unix milliseconds out of range: {value!r} @ {path}") from None


def _mid(raw_message: object) -> str | None:
    """The `mid` of a message that could not be read, if it has a readable one."""
    found = raw_message.get("mid") if isinstance(raw_message, dict) else None
    return found if isinstance(found, str) else None
