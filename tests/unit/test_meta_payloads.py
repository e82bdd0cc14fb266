"""Reading Meta webhook deliveries into inbound messages, delivery reports and ignored items."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain import limits
from domain.messages import MessageStatus
from entrypoints.http.meta.delivery import Delivery, IgnoredKind
from entrypoints.http.meta.envelope import MalformedDelivery, MalformedJson, parse_delivery, read_delivery

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
PHONE_NUMBER_ID = "106540352242922"
CUSTOMER = "16505551234"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_bytes())


def parse(name: str) -> Delivery:
    return parse_delivery(load(name))


def only_message(value: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = value["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


@pytest.mark.parametrize(
    ("fixture", "content_type", "text"),
    [
        ("text", "text", "Does it come in another color?"),
        ("text_with_referral", "text", "Hi! I saw your ad, is the offer still on?"),
        ("text_forwarded", "text", "Look at this deal my friend sent me"),
        ("interactive_button_reply", "interactive", "Book a demo"),
        ("interactive_list_reply", "interactive", "Pro plan — Up to 10 seats"),
        ("button", "button", "Yes, call me"),
        ("text_non_ascii", "text", "Hej! \U0001f600 äöå — مرحبا، هل المنتج متوفر؟"),
    ],
)
def test_answerable_message_types_carry_the_text_the_agent_answers(fixture: str, content_type: str, text: str) -> None:
    delivery = parse(fixture)

    assert delivery.reports == () and delivery.ignored == ()
    [message] = delivery.inbound
    assert message.answerable
    assert (message.content_type, message.text, message.skip_reason) == (content_type, text, None)


@pytest.mark.parametrize(
    ("fixture", "content_type", "skip_reason"),
    [
        ("image", "image", "unsupported_type:image"),
        ("audio_voice", "audio", "unsupported_type:audio"),
        ("video", "video", "unsupported_type:video"),
        ("document", "document", "unsupported_type:document"),
        ("sticker", "sticker", "unsupported_type:sticker"),
        ("location", "location", "unsupported_type:location"),
        ("contacts", "contacts", "unsupported_type:contacts"),
        ("reaction", "reaction", "unsupported_type:reaction"),
        ("reaction_removed", "reaction", "unsupported_type:reaction"),
        ("order", "order", "unsupported_type:order"),
        ("system_user_changed_number", "system", "unsupported_type:system"),
        ("unsupported", "unsupported", "unsupported_type:unsupported"),
        ("unknown_legacy", "unknown", "unsupported_type:unknown"),
        ("interactive_nfm_reply", "interactive", "unsupported_interactive:nfm_reply"),
    ],
)
def test_other_message_types_are_recorded_and_skipped_with_a_reason(
    fixture: str, content_type: str, skip_reason: str
) -> None:
    delivery = parse(fixture)

    assert delivery.reports == () and delivery.ignored == ()
    [message] = delivery.inbound
    assert not message.answerable
    assert (message.content_type, message.text, message.skip_reason) == (content_type, None, skip_reason)


def test_inbound_message_is_routed_on_the_phone_number_id_and_keeps_the_raw_message() -> None:
    payload = load("text")

    [message] = parse_delivery(payload).inbound

    assert message.phone_number_id == PHONE_NUMBER_ID
    assert message.platform_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.customer_id == CUSTOMER
    assert message.customer_name == "Sheena Nelson"
    assert message.sent_at == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    assert message.raw == only_message(payload)


def test_system_message_without_contacts_takes_the_old_number_as_customer_and_has_no_name() -> None:
    [message] = parse("system_user_changed_number").inbound

    assert (message.customer_id, message.customer_name) == (CUSTOMER, None)


def test_username_only_customer_is_identified_by_the_business_scoped_user_id() -> None:
    [message] = parse("bsuid_username_only").inbound

    assert message.customer_id == "US.13491208655302741918"
    assert message.customer_name == "Sheena"
    assert message.text == "Hi, is this the bakery?"


def test_from_user_id_identifies_the_customer_when_from_is_empty() -> None:
    payload = load("bsuid_username_only")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0]["from_user_id"] = "US.999"
    value["contacts"].append({"profile": {"name": "Other"}, "wa_id": "", "user_id": "US.999"})

    [message] = parse_delivery(payload).inbound

    assert (message.customer_id, message.customer_name) == ("US.999", "Other")


def test_contact_is_matched_by_wa_id_when_a_change_names_several_customers() -> None:
    inbound = parse("multi_entry").inbound

    names = {message.customer_id: message.customer_name for message in inbound}
    assert names == {CUSTOMER: "Sheena Nelson", "16505550000": "Ola Nordmann"}


def test_message_without_any_customer_identity_is_rejected_as_unreadable() -> None:
    payload = load("bsuid_username_only")
    del payload["entry"][0]["changes"][0]["value"]["contacts"]

    delivery = parse_delivery(payload)

    assert (delivery.inbound, delivery.ignored) == ((), ())
    [rejected] = delivery.rejected
    assert rejected.reason.startswith("unreadable: ") and "no sender" in rejected.reason
    assert (rejected.phone_number_id, rejected.platform_message_id) == (
        PHONE_NUMBER_ID,
        only_message(payload)["id"],
    )


@pytest.mark.parametrize("body", ["", "   \n"])
def test_empty_text_is_recorded_and_skipped(body: str) -> None:
    payload = load("text")
    only_message(payload)["text"]["body"] = body

    [message] = parse_delivery(payload).inbound

    assert (message.text, message.skip_reason) == (None, "empty_text")


def test_list_reply_without_description_is_only_the_title() -> None:
    payload = load("interactive_list_reply")
    del only_message(payload)["interactive"]["list_reply"]["description"]

    [message] = parse_delivery(payload).inbound

    assert message.text == "Pro plan"


@pytest.mark.parametrize(
    ("fixture", "status", "at"),
    [
        ("status_sent", MessageStatus.SENT, 1749416500),
        ("status_delivered", MessageStatus.DELIVERED, 1749416503),
        ("status_read", MessageStatus.READ, 1749416510),
        ("status_played", MessageStatus.PLAYED, 1749416530),
    ],
)
def test_statuses_become_delivery_reports(fixture: str, status: MessageStatus, at: int) -> None:
    delivery = parse(fixture)

    assert delivery.inbound == () and delivery.ignored == ()
    [report] = delivery.reports
    assert report.phone_number_id == PHONE_NUMBER_ID
    assert report.platform_message_id == "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    assert (report.status, report.at) == (status, datetime.fromtimestamp(at, tz=UTC))
    assert (report.error_code, report.error_reason) == (None, None)


def test_failed_status_carries_metas_error_code_and_reason() -> None:
    [report] = parse("status_failed").reports

    assert report.status == MessageStatus.FAILED
    assert report.error_code == "131049"
    assert report.error_reason == (
        "This message was not delivered to maintain healthy ecosystem engagement.: "
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    )


def test_failed_status_reason_falls_back_to_the_message_when_there_is_no_title() -> None:
    payload = load("status_failed")
    error = payload["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
    del error["title"], error["error_data"]

    [report] = parse_delivery(payload).reports

    assert report.error_reason == "This message was not delivered to maintain healthy ecosystem engagement."


def test_unknown_status_is_ignored() -> None:
    payload = load("status_sent")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "deleted"

    delivery = parse_delivery(payload)

    assert delivery.reports == ()
    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.STATUS, "unknown_status:deleted")


def test_account_level_errors_are_ignored_with_their_code() -> None:
    delivery = parse("value_errors_rate_limit")

    assert delivery.inbound == () and delivery.reports == ()
    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.PLATFORM_ERROR, "platform_error:130429")
    assert ignored.detail == "Rate limit hit: Cloud API message throughput has been reached."


def test_fields_other_than_messages_are_ignored() -> None:
    delivery = parse("account_update")

    assert delivery.inbound == () and delivery.reports == ()
    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.FIELD, "unhandled_field:account_update")


def test_every_entry_change_message_and_status_of_a_delivery_is_read() -> None:
    delivery = parse("multi_entry")

    assert [(m.phone_number_id, m.platform_message_id) for m in delivery.inbound] == [
        (PHONE_NUMBER_ID, "wamid.MULTI0001"),
        (PHONE_NUMBER_ID, "wamid.MULTI0002"),
        (PHONE_NUMBER_ID, "wamid.MULTI0003"),
        (PHONE_NUMBER_ID, "wamid.MULTI0004"),
        ("106540352242999", "wamid.MULTI0005"),
    ]
    assert [m.text for m in delivery.inbound] == ["first", "second", "third", None, "fifth"]
    assert [(r.phone_number_id, r.platform_message_id, r.status) for r in delivery.reports] == [
        (PHONE_NUMBER_ID, "wamid.OUT0001", MessageStatus.DELIVERED),
        (PHONE_NUMBER_ID, "wamid.OUT0002", MessageStatus.READ),
        ("106540352242999", "wamid.OUT0003", MessageStatus.SENT),
        ("106540352242999", "wamid.OUT0004", MessageStatus.FAILED),
    ]
    assert delivery.ignored == ()


@pytest.mark.parametrize(
    ("break_message", "expected_in_detail"),
    [
        (lambda m: m.pop("id"), "$.entry[0].changes[0].value.messages[1].id"),
        (lambda m: m.update(timestamp="yesterday"), "messages[1].timestamp"),
        (lambda m: m.update(timestamp=None), "messages[1].timestamp"),
        (lambda m: m.update(text={"body": {"nested": True}}), "messages[1].text.body"),
        (lambda m: m.pop("text"), "without its `text` object"),
        (lambda m: m.update(type=["text"]), "messages[1].type"),
    ],
)
def test_malformed_message_is_rejected_and_the_others_are_still_read(
    break_message: Any, expected_in_detail: str
) -> None:
    payload = load("multi_entry")
    break_message(payload["entry"][0]["changes"][0]["value"]["messages"][1])

    delivery = parse_delivery(payload)

    assert [m.platform_message_id for m in delivery.inbound] == [
        "wamid.MULTI0001",
        "wamid.MULTI0003",
        "wamid.MULTI0004",
        "wamid.MULTI0005",
    ]
    assert len(delivery.reports) == 4
    assert delivery.ignored == ()
    [rejected] = delivery.rejected
    assert rejected.reason.startswith("unreadable: ") and expected_in_detail in rejected.reason
    assert rejected.phone_number_id == PHONE_NUMBER_ID


def test_message_that_is_not_an_object_is_rejected_without_an_id() -> None:
    payload = load("multi_entry")
    payload["entry"][0]["changes"][0]["value"]["messages"][0] = "wamid.MULTI0001"

    delivery = parse_delivery(payload)

    assert len(delivery.inbound) == 4
    [rejected] = delivery.rejected
    assert (rejected.phone_number_id, rejected.platform_message_id) == (PHONE_NUMBER_ID, None)


def test_malformed_status_is_ignored_and_the_others_are_still_read() -> None:
    payload = load("multi_entry")
    del payload["entry"][1]["changes"][0]["value"]["statuses"][0]["timestamp"]

    delivery = parse_delivery(payload)

    assert [r.platform_message_id for r in delivery.reports] == ["wamid.OUT0001", "wamid.OUT0002", "wamid.OUT0004"]
    assert len(delivery.inbound) == 5
    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.STATUS, "malformed")
    assert ignored.detail is not None and "$.entry[1].changes[0].value.statuses[0].timestamp" in ignored.detail


def test_change_without_a_phone_number_id_is_ignored_and_other_changes_are_still_read() -> None:
    payload = load("multi_entry")
    del payload["entry"][0]["changes"][0]["value"]["metadata"]

    delivery = parse_delivery(payload)

    assert [m.platform_message_id for m in delivery.inbound] == [
        "wamid.MULTI0003",
        "wamid.MULTI0004",
        "wamid.MULTI0005",
    ]
    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.ENTRY, "malformed")
    assert ignored.detail is not None and "$.entry[0].changes[0].value.metadata" in ignored.detail


@pytest.mark.parametrize("broken", [{"entry": "x"}, {"changes": {"field": "messages"}}, {"changes": ["x"]}])
def test_unreadable_entry_or_change_is_ignored_and_the_next_entry_is_still_read(broken: dict[str, Any]) -> None:
    payload = load("multi_entry")
    payload["entry"][0] = broken.get("entry", broken)

    delivery = parse_delivery(payload)

    assert [m.platform_message_id for m in delivery.inbound] == ["wamid.MULTI0005"]
    assert [(i.kind, i.reason) for i in delivery.ignored] == [(IgnoredKind.ENTRY, "malformed")]


def test_unreadable_contact_does_not_cost_the_message() -> None:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["contacts"] = ["not a contact"]

    [message] = parse_delivery(payload).inbound

    assert (message.customer_id, message.customer_name) == (CUSTOMER, None)


def test_messages_that_are_not_a_list_make_the_change_malformed() -> None:
    payload = load("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"] = value["messages"][0]

    delivery = parse_delivery(payload)

    assert delivery.inbound == ()
    assert [(i.kind, i.reason) for i in delivery.ignored] == [(IgnoredKind.ENTRY, "malformed")]


def test_unknown_fields_are_tolerated() -> None:
    payload = load("text")
    only_message(payload)["brand_new_field"] = {"anything": [1, 2]}
    payload["entry"][0]["changes"][0]["value"]["metadata"]["extra"] = True

    [message] = parse_delivery(payload).inbound

    assert message.text == "Does it come in another color?"


def test_unknown_object_is_ignored() -> None:
    delivery = parse_delivery({"object": "page", "entry": [{"id": "1", "messaging": []}]})

    assert (delivery.inbound, delivery.reports) == ((), ())
    assert [(i.kind, i.reason) for i in delivery.ignored] == [(IgnoredKind.OBJECT, "unknown_object:page")]


def test_instagram_messaging_events_are_read_one_by_one() -> None:
    # Instagram is handled now: see tests/unit/test_instagram_webhook.py for every shape.
    event = {"sender": {"id": "1"}, "recipient": {"id": "2"}, "timestamp": 1569262485349, "message": {"mid": "m"}}
    payload = {"object": "instagram", "entry": [{"id": "2", "time": 1569262486134, "messaging": [event, event]}]}

    delivery = parse_delivery(payload)

    assert [(m.phone_number_id, m.customer_id, m.skip_reason) for m in delivery.inbound] == [
        ("2", "1", "empty_text")
    ] * 2
    assert delivery.ignored == ()


def test_delivery_wrapped_in_a_one_element_array_is_unwrapped() -> None:
    payload = load("text")

    assert parse_delivery([copy.deepcopy(payload)]) == parse_delivery(payload)


@pytest.mark.parametrize(
    ("payload", "field_path"),
    [
        ("just a string", "$"),
        (None, "$"),
        ([{"object": "instagram", "entry": []}, {"object": "instagram", "entry": []}], "$"),
        ({"object": "whatsapp_business_account"}, "$.entry"),
        ({"object": "whatsapp_business_account", "entry": {"id": "1"}}, "$.entry"),
    ],
)
def test_unusable_top_level_is_a_malformed_delivery(payload: object, field_path: str) -> None:
    with pytest.raises(MalformedDelivery) as raised:
        parse_delivery(payload)

    assert raised.value.field_path == field_path
    assert isinstance(raised.value, ValueError)


def test_empty_entry_list_is_an_empty_delivery() -> None:
    assert parse_delivery({"object": "whatsapp_business_account", "entry": []}) == Delivery()


# --- what PostgreSQL cannot store, and bounds ---------------------------------------------------


def test_nul_and_lone_surrogates_are_replaced_in_every_string_read_and_in_the_raw_json_keys_included() -> None:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = "She\x00na \ud83d"
    message = only_message(payload)
    message["text"]["body"] = "Does it come in \x00 another color?\udfff"
    message["unread\x00key"] = {"nested": ["\ud800", "fine"]}

    [read] = parse_delivery(payload).inbound

    assert read.text == "Does it come in \ufffd another color?\ufffd"
    assert read.customer_name == "She\ufffdna \ufffd"
    assert read.raw["unread\ufffdkey"] == {"nested": ["\ufffd", "fine"]}
    assert read.raw["text"] == {"body": read.text}


@pytest.mark.parametrize(
    ("body", "encoding", "ensure_ascii"),
    [
        ("Does it come in blue?", "utf-8", True),  # the usual delivery: nothing to replace, no walk
        ("café, ça va", "utf-8", False),  # UTF-8 as it is
        ("café, ça va", "utf-8", True),  # escaped: \u00e9
        ("a 😀 for you", "utf-8", True),  # a surrogate pair escaped: one character once read
        ("a \ud83d alone", "utf-8", True),  # a lone surrogate escaped
        ("a \x00 in it", "utf-8", True),  # NUL escaped
        ("a \ud83d alone", "utf-16", False),  # UTF-16, which json also reads
        ("a \x00 in it", "utf-32", False),
    ],
)
def test_a_body_read_as_it_comes_gives_the_same_delivery_as_one_walked_string_by_string(
    body: str, encoding: str, ensure_ascii: bool
) -> None:
    payload = load("text")
    only_message(payload)["text"]["body"] = body
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = body
    raw = json.dumps(payload, ensure_ascii=ensure_ascii).encode(encoding, "surrogatepass")

    read = read_delivery(raw)

    assert read == parse_delivery(json.loads(raw))  # the walk made every string storable
    assert all(limits.is_storable(text) for text in (read.inbound[0].text or "", read.inbound[0].customer_name or ""))


def test_an_unreadable_id_made_storable_is_still_the_same_id_on_every_redelivery() -> None:
    payload = load("text")
    only_message(payload)["id"] = "wamid.\x00A"

    first, second = parse_delivery(payload).inbound, parse_delivery(copy.deepcopy(payload)).inbound

    assert first[0].platform_message_id == second[0].platform_message_id == "wamid.\ufffdA"


def test_a_customer_name_over_its_bound_is_cut_and_the_message_taken() -> None:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = "N" * (limits.CUSTOMER_NAME + 1)

    [message] = parse_delivery(payload).inbound

    assert message.customer_name == "N" * limits.CUSTOMER_NAME


def test_an_unsupported_interactive_type_over_the_bound_of_a_reason_is_cut_in_the_reason() -> None:
    payload = load("interactive_nfm_reply")
    only_message(payload)["interactive"]["type"] = "t" * limits.FAILURE_REASON

    [message] = parse_delivery(payload).inbound

    assert message.skip_reason == ("unsupported_interactive:" + "t" * limits.FAILURE_REASON)[: limits.FAILURE_REASON]


def _nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m["text"].update(body="x" * (limits.CUSTOMER_TEXT + 1)), "too_long:text (65537 characters"),
        (lambda m: m.update(id="w" * (limits.PLATFORM_MESSAGE_ID + 1)), "too_long:platform_message_id"),
        (lambda m: m.update({"from": "1" * (limits.CUSTOMER_ID + 1)}), "too_long:customer_id"),
        (lambda m: m.update(type="t" * (limits.CONTENT_TYPE + 1)), "too_long:content_type"),
        (lambda m: m.update(extra="é" * (limits.RAW_MESSAGE_BYTES // 2)), "too_long:raw"),
        (lambda m: m.update(extra=_nested(limits.RAW_MESSAGE_DEPTH)), "too_deep:raw (33 levels, at most 32)"),
    ],
    ids=["text", "id", "from", "type", "raw-size", "raw-depth"],
)
def test_a_message_over_a_bound_is_rejected_and_the_others_are_still_read(change: Any, reason: str) -> None:
    payload = load("multi_entry")
    change(payload["entry"][0]["changes"][0]["value"]["messages"][1])

    delivery = parse_delivery(payload)

    assert [m.platform_message_id for m in delivery.inbound] == [
        "wamid.MULTI0001",
        "wamid.MULTI0003",
        "wamid.MULTI0004",
        "wamid.MULTI0005",
    ]
    [rejected] = delivery.rejected
    assert rejected.reason.startswith(reason)
    assert rejected.phone_number_id == PHONE_NUMBER_ID


def test_a_message_at_every_bound_is_taken() -> None:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "1" * limits.CUSTOMER_ID
    message = only_message(payload)
    message.update({"from": "1" * limits.CUSTOMER_ID, "id": "w" * limits.PLATFORM_MESSAGE_ID})
    # Every character escaped as \u0001: the heaviest text at its bound still fits the raw JSON's bound.
    message["text"]["body"] = "\x01" * limits.CUSTOMER_TEXT
    message["extra"] = _nested(limits.RAW_MESSAGE_DEPTH - 2)

    [read] = parse_delivery(payload).inbound

    assert read.text == "\x01" * limits.CUSTOMER_TEXT
    assert read.customer_id == "1" * limits.CUSTOMER_ID


def test_a_status_with_an_id_longer_than_any_of_ours_is_ignored_and_an_error_over_its_bounds_is_cut() -> None:
    payload = load("status_failed")
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses.append(copy.deepcopy(statuses[0]))
    statuses[0]["id"] = "w" * (limits.PLATFORM_MESSAGE_ID + 1)
    statuses[1]["errors"][0].update(code=10**100, title="T" * limits.FAILURE_REASON)

    delivery = parse_delivery(payload)

    [ignored] = delivery.ignored
    assert (ignored.kind, ignored.reason) == (IgnoredKind.STATUS, "not_ours")
    [report] = delivery.reports
    assert report.error_code == str(10**100)[: limits.FAILURE_CODE]
    assert report.error_reason == "T" * limits.FAILURE_REASON


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b"NaN", b'{"entry": [Infinity]}', b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "cut-short", "not-utf-8", "nan", "infinity", "nested-too-deeply"],
)
def test_a_body_that_is_not_json_is_malformed_json(raw: bytes) -> None:
    with pytest.raises(MalformedJson) as raised:
        read_delivery(raw)

    assert raised.value.code == "malformed_json" and raised.value.field_path is None


def test_numbers_json_allows_but_python_cannot_hold_are_kept_as_the_text_they_were() -> None:
    payload = load("text")
    only_message(payload)["extra"] = "__NUMBERS__"
    raw = json.dumps(payload).replace('"__NUMBERS__"', "[1e999, -1e999, " + "7" * 5_000 + "]").encode()

    [message] = read_delivery(raw).inbound

    assert message.raw["extra"] == ["1e999", "-1e999", "7" * 5_000]
