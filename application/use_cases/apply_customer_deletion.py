"""The customer unsent one of their messages (Instagram's `is_deleted`): if it still waits for an answer it
is skipped and never answered; if it was answered already it stays, and the deletion is logged."""

from __future__ import annotations

import logging

from application.ports.pipeline import MessageStore
from application.ports.services import Clock
from domain.messages import CustomerDeletion

log = logging.getLogger(__name__)

#: A worker taking the message meanwhile makes the save fail: read it again and decide again.
_ATTEMPTS = 5


class ApplyCustomerDeletion:
    def __init__(self, messages: MessageStore, clock: Clock) -> None:
        self._messages = messages
        self._clock = clock

    def __call__(self, deletion: CustomerDeletion) -> bool:
        """True when the message was stored and is now skipped as deleted by the customer."""
        for _ in range(_ATTEMPTS):
            message = self._messages.inbound(deletion.phone_number_id, deletion.platform_message_id)
            if message is None:
                return False  # not stored (yet): the deletion itself is stored skipped, never answered
            deleted = message.deleted_by_customer(self._clock.now())
            if deleted is None:
                log.info(
                    "deletion_after_answer",
                    extra={"message_id": message.message_id, "status": str(message.status)},
                )
                return False
            if self._messages.save_deletion(message, deleted):
                log.info("message_deleted_by_customer", extra={"message_id": message.message_id})
                return True
        log.warning("customer_deletion_dropped", extra={"platform_message_id": deletion.platform_message_id})
        return False
