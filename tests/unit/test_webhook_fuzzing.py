"""Property-based tests of the webhook, on the in-memory app: whatever a correctly signed delivery holds,
the parser reads it into values that can be stored and are within their bounds (or calls it malformed),
the route answers 200 or 400 and never 5xx, no job raises in the worker, and the customer's next
ordinary message is still stored and answered.

What only PostgreSQL refuses is tried against it in tests/integration/test_fuzzing_postgres.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain import limits
from domain.messages import InboundMessage, MessageStatus
from entrypoints.container import build_container
from entrypoints.http.json_input import json_depth, json_size
from entrypoints.http.meta.delivery import Delivery
from entrypoints.http.meta.envelope import MalformedDelivery, parse_delivery, read_delivery
from entrypoints.settings import Settings
from tests.support.fuzzing import any_delivery_body, json_values, mutated_deliveries, odd_bodies
from tests.support.inprocess import InProcessService


def _texts_of(value: object) -> list[str]:
    """Every string in decoded JSON, keys included."""
    texts, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            texts += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str):
            texts.append(item)
    return texts


def _assert_storable_and_bounded(message: InboundMessage) -> None:
    bounded = [
        (message.phone_number_id, limits.CHANNEL_ID),
        (message.platform_message_id, limits.PLATFORM_MESSAGE_ID),
        (message.customer_id, limits.CUSTOMER_ID),
        (message.customer_name, limits.CUSTOMER_NAME),
        (message.content_type, limits.CONTENT_TYPE),
        (message.text, limits.CUSTOMER_TEXT),
        (message.skip_reason, limits.FAILURE_REASON),
    ]
    for text, limit in bounded:
        assert text is None or (len(text) <= limit and limits.is_storable(text)), (text, limit)
    assert all(limits.is_storable(text) for text in _texts_of(message.raw))
    assert json_depth(message.raw) <= limits.RAW_MESSAGE_DEPTH
    assert json_size(message.raw) <= limits.RAW_MESSAGE_BYTES


def _assert_all_storable(delivery: Delivery) -> None:
    for message in delivery.inbound:
        _assert_storable_and_bounded(message)
    for report in delivery.reports:
        assert len(report.phone_number_id) <= limits.CHANNEL_ID
        assert len(report.platform_message_id) <= limits.PLATFORM_MESSAGE_ID
        assert report.error_code is None or len(report.error_code) <= limits.FAILURE_CODE
        assert report.error_reason is None or len(report.error_reason) <= limits.FAILURE_REASON
        texts = [report.phone_number_id, report.platform_message_id, report.error_code, report.error_reason]
        assert all(text is None or limits.is_storable(text) for text in texts)


@given(payload=json_values())
def test_the_parser_reads_any_json_into_storable_bounded_values_or_calls_it_malformed(payload: object) -> None:
    try:
        delivery = parse_delivery(payload)
    except MalformedDelivery:
        return
    _assert_all_storable(delivery)


@given(raw=st.one_of(mutated_deliveries(), odd_bodies()))
def test_the_parser_reads_any_mutation_of_a_documented_delivery_into_storable_bounded_values(raw: bytes) -> None:
    try:
        delivery = read_delivery(raw)
    except MalformedDelivery:
        return
    _assert_all_storable(delivery)


@given(raw=any_delivery_body())
def test_any_signed_delivery_is_answered_200_or_400_and_the_next_message_is_still_answered(raw: bytes) -> None:
    service = InProcessService(build_container(Settings.from_env({}, dev=True)))

    answer = service.deliver(raw)
    assert answer.status_code in (200, 400), answer.get_data()[:500]
    service.drain()  # an exception in a job fails here

    service.resume_bots()

    valid = service.deliver_valid_text()
    service.drain()
    assert service.message(valid).status is MessageStatus.ANSWERED
