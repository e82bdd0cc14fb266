"""Outgoing webhooks' rules: which URLs a business may give, how a POST is signed, and how long and
how often a delivery is tried. Plain domain objects, `now` passed in."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidTransition, ValidationFailed
from domain.webhooks import (
    ERROR_MAX,
    EVENT_ID_HEADER,
    GIVE_UP_AFTER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    URL_MAX,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    check_url,
    sign,
    signature_matches,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_9f1c2e7a4b8d0c3f5a6e"
URL = "https://crm.example.com/hooks/mcagent"
NOTIFICATION = {"kind": "hot_lead", "conversation_id": 42, "name": "Zoë Öztürk", "score": 3}


def a_delivery(created_at: datetime = NOW) -> WebhookDelivery:
    return WebhookDelivery.first("usr_1", 7, "evt_01JNQ8", URL, created_at)


def failed_at(delivery: WebhookDelivery, at: datetime, error: str | None = "HTTP 503: busy") -> WebhookDelivery:
    attempt = WebhookAttempt(delivery.attempts + 1, at, 503, error, 120)
    return delivery.answered(attempt, accepted=False)


def hmac_sha256_by_hand(key: bytes, message: bytes) -> str:
    """RFC 2104 with hashlib alone, so the test does not check `hmac` against itself."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block) + message).digest()
    return hashlib.sha256(bytes(byte ^ 0x5C for byte in block) + inner).hexdigest()


# --- which URLs


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "http://hooks.example.com:8080/in?tenant=7&kind=lead",
        "https://[2001:db8::1]:8443/hook",
        "https://bücher.example/eingang",
        "HTTPS://CRM.EXAMPLE.COM/",
        "https://example.com/" + "a" * (URL_MAX - len("https://example.com/")),
    ],
)
def test_an_absolute_http_or_https_url_is_taken(url: str) -> None:
    assert check_url(url) == url


def test_the_url_is_taken_without_surrounding_spaces() -> None:
    assert check_url(f"  {URL}\n") == URL


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.com/in", "url must be an absolute http(s) URL"),
        ("javascript:alert(1)", "url must be an absolute http(s) URL"),
        ("crm.example.com/hooks", "url must be an absolute http(s) URL"),
        ("//crm.example.com/hooks", "url must be an absolute http(s) URL"),
        ("https:///hooks", "url must be an absolute http(s) URL"),
        ("", "url must be an absolute http(s) URL"),
        ("   ", "url must be an absolute http(s) URL"),
        ("https://user:pass@crm.example.com/", "url must not carry a user name or password"),
        ("https://token@crm.example.com/", "url must not carry a user name or password"),
        ("https://crm.example.com/hooks#section", "url must not have a #fragment"),
        ("https://example.com/" + "a" * URL_MAX, f"url must be at most {URL_MAX} characters"),
    ],
)
def test_a_url_that_is_not_one_the_service_may_post_to_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_url(url)

    assert (refused.value.message, refused.value.field) == (message, "url")


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1/hook",  # urlsplit raised ValueError: an API answer of 500 instead of 400
        "https://[not-an-ip]/hook",
        "https://crm.example.com\uff03@evil.example/",
        "https://crm.example.com:99999/",
        "https://crm.example.com:https/",
        "https://crm.example.com:0/",
        "https://crm example.com/hooks",
        "https://crm.example.com/ho\noks",
        "https://crm.example.com/ho\x00oks",
    ],
)
def test_a_url_no_request_can_be_made_to_is_refused_as_invalid(url: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_url(url)

    assert refused.value.field == "url"


@pytest.mark.parametrize("value", [None, 42, b"https://crm.example.com/", ["https://crm.example.com/"], {}])
def test_a_url_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(ValidationFailed, match="absolute http"):
        check_url(value)


# --- signing


def test_the_signature_is_the_hex_hmac_sha256_of_the_raw_body_under_the_secret() -> None:
    body = b'{"event_id":"evt_1","type":"notification.created"}'

    assert sign(SECRET, body) == "sha256=" + hmac_sha256_by_hand(SECRET.encode(), body)
    # RFC 4231, test case 2.
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign("Jefe", b"what do ya want for nothing?") == f"sha256={expected}"


def test_the_signature_of_the_body_sent_matches() -> None:
    body = b'{"event_id":"evt_1"}'

    assert signature_matches(SECRET, body, sign(SECRET, body))
    assert signature_matches(SECRET, body, f"  {sign(SECRET, body)} ")


@pytest.mark.parametrize(
    "header",
    [
        sign(SECRET, b'{"event_id":"evt_2"}'),  # the signature of another body
        sign("whsec_someone_else", b'{"event_id":"evt_1"}'),
        sign(SECRET, b'{"event_id":"evt_1"}').removeprefix("sha256="),
        "",
        None,
        "sha256=é",  # compare_digest refuses non-ASCII str: this raised TypeError instead of not matching
    ],
)
def test_any_other_signature_does_not_match(header: str | None) -> None:
    assert not signature_matches(SECRET, b'{"event_id":"evt_1"}', header)


def test_a_tampered_body_does_not_match_its_signature() -> None:
    body = a_delivery().body(NOTIFICATION, "notification.created", NOW)
    signature = sign(SECRET, body)

    assert not signature_matches(SECRET, body.replace(b'"score":3', b'"score":1'), signature)


# --- the POST's bytes and headers


def test_the_body_is_compact_json_with_its_keys_in_a_fixed_order() -> None:
    body = a_delivery().body(NOTIFICATION, "notification.created", NOW)

    envelope = json.loads(body)
    assert list(envelope) == ["event_id", "type", "sent_at", "attempt", "notification"]
    assert envelope == {
        "event_id": "evt_01JNQ8",
        "type": "notification.created",
        "sent_at": int(NOW.timestamp()),
        "attempt": 1,
        "notification": NOTIFICATION,
    }
    assert b", " not in body and b": " not in body
    assert "Zoë Öztürk".encode() in body  # UTF-8 as it is, not \\u escapes


def test_the_same_delivery_gives_the_same_bytes() -> None:
    first = a_delivery().body(NOTIFICATION, "notification.created", NOW)

    assert a_delivery().body(dict(NOTIFICATION), "notification.created", NOW) == first


def test_every_attempt_carries_the_same_event_id_and_its_own_attempt_number() -> None:
    delivery = a_delivery()
    envelopes = []
    for minute in range(3):
        sent_at = NOW + timedelta(minutes=minute)
        envelopes.append(json.loads(delivery.body(NOTIFICATION, "notification.created", sent_at)))
        delivery = failed_at(delivery, sent_at)

    assert [envelope["event_id"] for envelope in envelopes] == ["evt_01JNQ8"] * 3
    assert [envelope["attempt"] for envelope in envelopes] == [1, 2, 3]
    assert [envelope["sent_at"] for envelope in envelopes] == [int(NOW.timestamp()) + 60 * m for m in range(3)]
    assert {tuple(envelope) for envelope in envelopes} == {("event_id", "type", "sent_at", "attempt", "notification")}


def test_the_headers_carry_the_signature_of_the_body_the_event_id_and_the_time_sent() -> None:
    delivery = a_delivery()
    body = delivery.body(NOTIFICATION, "notification.created", NOW)

    headers = delivery.headers(SECRET, body, NOW)

    assert headers == {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(SECRET, body),
        EVENT_ID_HEADER: "evt_01JNQ8",
        TIMESTAMP_HEADER: str(json.loads(body)["sent_at"]),
    }
    assert signature_matches(SECRET, body, headers[SIGNATURE_HEADER])


# --- tries: delivered, retried, given up


def test_a_2xx_answer_delivers() -> None:
    at = NOW + timedelta(seconds=2)

    delivered = a_delivery().answered(WebhookAttempt(1, at, 204, None, 85), accepted=True)

    assert delivered.status is DeliveryStatus.DELIVERED
    assert delivered.finished
    assert (delivered.delivered_at, delivered.next_attempt_at) == (at, None)
    assert (delivered.attempts, delivered.last_status_code, delivered.last_error) == (1, 204, None)


def test_a_new_delivery_is_due_at_once() -> None:
    delivery = a_delivery()

    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.PENDING, 0, NOW)
    assert not delivery.finished


def test_a_failed_attempt_keeps_the_receivers_answer_and_is_tried_again_in_30_seconds() -> None:
    at = NOW + timedelta(seconds=1)

    retrying = failed_at(a_delivery(), at, error="HTTP 503: busy")

    assert retrying.status is DeliveryStatus.PENDING
    assert retrying.next_attempt_at == at + timedelta(seconds=30)
    assert (retrying.attempts, retrying.last_status_code, retrying.last_error) == (1, 503, "HTTP 503: busy")


def test_the_wait_doubles_after_each_failure_up_to_an_hour() -> None:
    delivery, waits = a_delivery(), []
    for _ in range(12):
        at = delivery.next_attempt_at
        assert at is not None
        delivery = failed_at(delivery, at)
        assert delivery.next_attempt_at is not None
        waits.append(int((delivery.next_attempt_at - at).total_seconds()))

    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600, 3600]


def test_a_delivery_failing_every_time_is_given_up_before_any_try_past_24_hours() -> None:
    delivery, tried_at = a_delivery(), []
    while not delivery.finished:
        at = delivery.next_attempt_at
        assert at is not None
        assert at < NOW + GIVE_UP_AFTER
        tried_at.append(at)
        delivery = failed_at(delivery, at)

    assert delivery.status is DeliveryStatus.GIVEN_UP
    assert delivery.next_attempt_at is None
    # 7 doubling waits (30 s … 32 min: 63.5 min in all), then hourly: 30 tries, the last 23 h 3.5 min in.
    assert delivery.attempts == len(tried_at) == 30
    assert tried_at[-1] - NOW == timedelta(hours=23, minutes=3, seconds=30)


def test_a_late_failure_whose_retry_would_fall_after_24_hours_is_given_up_at_once() -> None:
    # The worker was down: the first try is made 23 h 59 min 45 s after the notification.
    late = NOW + GIVE_UP_AFTER - timedelta(seconds=15)

    given_up = failed_at(a_delivery(), late)

    assert (given_up.status, given_up.attempts, given_up.next_attempt_at) == (DeliveryStatus.GIVEN_UP, 1, None)


def test_a_retry_falling_just_before_24_hours_is_still_made() -> None:
    just_in_time = NOW + GIVE_UP_AFTER - timedelta(seconds=31)

    retrying = failed_at(a_delivery(), just_in_time)

    assert retrying.status is DeliveryStatus.PENDING
    assert retrying.next_attempt_at == NOW + GIVE_UP_AFTER - timedelta(seconds=1)


def test_a_long_error_is_kept_to_its_start_and_an_empty_one_as_none() -> None:
    long = failed_at(a_delivery(), NOW, error="HTTP 500: " + "x" * 2_000)
    empty = failed_at(a_delivery(), NOW, error="")

    assert long.last_error == ("HTTP 500: " + "x" * 2_000)[:ERROR_MAX]
    assert empty.last_error is None


@pytest.mark.parametrize("accepted", [True, False])
def test_a_finished_delivery_cannot_be_answered_again(accepted: bool) -> None:
    delivered = a_delivery().answered(WebhookAttempt(1, NOW, 200, None, 40), accepted=True)
    given_up = failed_at(a_delivery(), NOW + GIVE_UP_AFTER)
    assert given_up.status is DeliveryStatus.GIVEN_UP

    for finished in (delivered, given_up):
        with pytest.raises(InvalidTransition):
            finished.answered(WebhookAttempt(finished.attempts + 1, NOW, 200, None, 40), accepted=accepted)


# --- the business's endpoint


def test_configuring_an_endpoint_checks_its_url_and_dates_its_secret() -> None:
    endpoint = WebhookEndpoint.configure("usr_1", f" {URL} ", SECRET, NOW)

    assert (endpoint.user_id, endpoint.url, endpoint.secret) == ("usr_1", URL, SECRET)
    assert endpoint.created_at == endpoint.secret_rotated_at == NOW
    assert SECRET not in repr(endpoint)
    with pytest.raises(ValidationFailed):
        WebhookEndpoint.configure("usr_1", "ftp://files.example.com/", SECRET, NOW)


def test_moving_an_endpoint_keeps_its_secret() -> None:
    endpoint = WebhookEndpoint.configure("usr_1", URL, SECRET, NOW)

    moved = endpoint.move_to("https://new-crm.example.com/in")

    assert (moved.url, moved.secret, moved.secret_rotated_at) == ("https://new-crm.example.com/in", SECRET, NOW)
    with pytest.raises(ValidationFailed):
        endpoint.move_to("https://user:pass@new-crm.example.com/in")


def test_rotating_the_secret_keeps_the_url_and_dates_the_new_secret() -> None:
    endpoint = WebhookEndpoint.configure("usr_1", URL, SECRET, NOW)
    later = NOW + timedelta(days=30)

    rotated = endpoint.rotate("whsec_new_0a1b2c3d", later)

    assert (rotated.secret, rotated.secret_rotated_at) == ("whsec_new_0a1b2c3d", later)
    assert (rotated.url, rotated.created_at) == (URL, NOW)
    assert endpoint.secret == SECRET  # the endpoint is a value: the old one is unchanged
