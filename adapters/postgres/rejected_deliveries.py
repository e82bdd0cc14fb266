"""What the webhook could not store, kept in PostgreSQL for inspection (`rejected_deliveries`)."""

from __future__ import annotations

from typing import LiteralString

from adapters.postgres._sql import PostgresStore
from domain.rejections import RejectedDelivery

_RECORD: LiteralString = """
INSERT INTO rejected_deliveries (
    received_at, reason, phone_number_id, platform_message_id, correlation_id, body, body_size)
VALUES (%(received_at)s, %(reason)s, %(phone_number_id)s, %(platform_message_id)s, %(correlation_id)s,
        %(body)s, %(body_size)s)
"""


class PostgresRejectedDeliveries(PostgresStore):
    def record(self, rejected: RejectedDelivery) -> None:
        with self._autocommit() as cursor:
            cursor.execute(
                _RECORD,
                {
                    "received_at": rejected.received_at,
                    "reason": rejected.reason,
                    "phone_number_id": rejected.phone_number_id,
                    "platform_message_id": rejected.platform_message_id,
                    "correlation_id": rejected.correlation_id,
                    "body": rejected.body,
                    "body_size": rejected.body_size,
                },
            )
