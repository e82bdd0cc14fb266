"""The top level of a webhook delivery, `{"object": …, "entry": […]}`: each entry goes to the reader
of the channel that `object` names."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from entrypoints.http.json_input import NotJson, decodes_storable, parse_json, storable_json
from entrypoints.http.meta import instagram, whatsapp
from entrypoints.http.meta.delivery import Collector, Delivery, IgnoredKind


class MalformedDelivery(ValueError):
    """The body is JSON but not a webhook delivery at all; the HTTP layer answers 400."""

    code = "malformed_delivery"

    def __init__(self, field_path: str | None, message: str) -> None:
        super().__init__(message if field_path is None else f"{message} @ {field_path}")
        self.field_path = field_path
        self.message = message


class MalformedJson(MalformedDelivery):
    """The body is not JSON (as `parse_json` reads it)."""

    code = "malformed_json"

    def __init__(self, reason: str) -> None:
        super().__init__(None, f"the body is not valid JSON: {reason}")


_ENTRY_READERS: dict[str, Callable[[object, str, Collector], None]] = {
    "whatsapp_business_account": whatsapp.read_entry,
    "instagram": instagram.read_entry,
}


def read_delivery(raw: bytes) -> Delivery:
    """Read a webhook POST body. Raises MalformedDelivery (MalformedJson when it is not JSON)."""
    try:
        payload = parse_json(raw)
    except NotJson as error:
        raise MalformedJson(str(error)) from None
    return parse_delivery(payload, storable=decodes_storable(raw))


def parse_delivery(payload: object, *, storable: bool = False) -> Delivery:
    """Read one webhook POST body (already JSON-decoded) into inbound messages, status reports and
    the things deliberately ignored or rejected. Every string read is storable (NUL and lone
    surrogates replaced, `domain.limits.storable`), including those of the raw JSON kept per message;
    `storable` says the payload's strings are so already (`decodes_storable`).
    Raises MalformedDelivery only when the top level is unusable."""
    if not storable:
        payload = storable_json(payload)
    if isinstance(payload, list) and len(payload) == 1:
        # Meta's Instagram examples show the delivery wrapped in an array; tolerate that form.
        payload = payload[0]
    if not isinstance(payload, Mapping):
        raise MalformedDelivery("$", f"expected a JSON object, got {type(payload).__name__}")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedDelivery("$.entry", f"expected a JSON array, got {type(entries).__name__}")

    collected = Collector()
    object_name = payload.get("object")
    read_entry = _ENTRY_READERS.get(object_name) if isinstance(object_name, str) else None
    if read_entry is None:
        collected.ignore(IgnoredKind.OBJECT, f"unknown_object:{object_name}")
        return collected.delivery()
    for index, entry in enumerate(entries):
        read_entry(entry, f"$.entry[{index}]", collected)
    return collected.delivery()
