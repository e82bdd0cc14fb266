"""A customer's unsent message (Instagram's `is_deleted`), on the in-memory and the PostgreSQL adapters
alike: found by its platform id among the customer's messages only, and skipped only while it is still as
it was read (a worker taking it meanwhile wins)."""

from __future__ import annotations

from domain.messages import DELETED_BY_CUSTOMER, MessageStatus
from tests.integration.test_repository_contract import Storage, _record, _seed, _sent_part, storage
from tests.support.postgres import NOW, minutes

__all__ = ["storage"]


def test_a_waiting_message_is_found_and_skipped_as_deleted(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "mid.1")

    found = storage.messages.inbound("pn-1", "mid.1")
    assert found is not None and found.message_id == recorded.message_id
    deleted = found.deleted_by_customer(NOW + minutes(1))
    assert deleted is not None

    assert storage.messages.save_deletion(found, deleted)
    stored = storage.peek.message(recorded.message_id)
    assert (stored.status, stored.failure_reason) == (MessageStatus.SKIPPED, DELETED_BY_CUSTOMER)
    assert stored.updated_at == NOW + minutes(1)


def test_a_message_changed_since_it_was_read_is_not_skipped(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "mid.1")
    found = storage.messages.inbound("pn-1", "mid.1")
    assert found is not None
    first = found.deleted_by_customer(NOW + minutes(1))
    assert first is not None and storage.messages.save_deletion(found, first)

    again = found.deleted_by_customer(NOW + minutes(2))
    assert again is not None
    assert not storage.messages.save_deletion(found, again)
    assert storage.peek.message(recorded.message_id).updated_at == NOW + minutes(1)


def test_only_customer_messages_are_found(storage: Storage) -> None:
    route = _seed(storage.uow)
    _sent_part(storage, route, "mid.ours")

    assert storage.messages.inbound("pn-1", "mid.ours") is None
    assert storage.messages.inbound("pn-1", "mid.unknown") is None
    assert storage.messages.inbound("pn-2", "mid.ours") is None
