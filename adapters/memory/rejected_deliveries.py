"""What the webhook could not store, kept in memory."""

from __future__ import annotations

import threading

from domain.rejections import RejectedDelivery


class InMemoryRejectedDeliveries:
    def __init__(self) -> None:
        self.recorded: list[RejectedDelivery] = []
        self._mutex = threading.Lock()

    def record(self, rejected: RejectedDelivery) -> None:
        with self._mutex:
            self.recorded.append(rejected)
