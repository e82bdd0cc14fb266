"""The in-memory unit of work: the management side's repositories over one store, one transaction per block."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from adapters.memory.agents import InMemoryAgentsRepository
from adapters.memory.channels import InMemoryChannelsRepository
from adapters.memory.conversations import InMemoryConversationsRepository
from adapters.memory.credits import InMemoryCreditsRepository
from adapters.memory.extractions import InMemoryExtractionsRepository
from adapters.memory.messages import InMemoryMessagesRepository
from adapters.memory.notifications import InMemoryNotificationsRepository
from adapters.memory.seats import InMemorySeatsRepository
from adapters.memory.tables import InMemoryStore, Tables
from adapters.memory.users import InMemoryUsersRepository
from adapters.memory.webhooks import InMemoryWebhooksRepository
from application.ports.lead_storage import ExtractionsRepository, NotificationsRepository, WebhooksRepository
from application.ports.repositories import (
    AgentsRepository,
    ChannelsRepository,
    ConversationsRepository,
    CreditsRepository,
    MessagesRepository,
    SeatsRepository,
    UsersRepository,
)


class InMemoryUnitOfWork:
    """`with uow: ...; uow.commit()`: the block holds the store's lock; what is not committed is rolled back."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._saved: Tables | None = None
        self.committed = 0
        # Typed as the ports: a Protocol's attributes are invariant.
        self.users: UsersRepository = InMemoryUsersRepository(store)
        self.channels: ChannelsRepository = InMemoryChannelsRepository(store)
        self.agents: AgentsRepository = InMemoryAgentsRepository(store)
        self.credits: CreditsRepository = InMemoryCreditsRepository(store)
        self.conversations: ConversationsRepository = InMemoryConversationsRepository(store)
        self.messages: MessagesRepository = InMemoryMessagesRepository(store)
        self.seats: SeatsRepository = InMemorySeatsRepository(store)
        self.extractions: ExtractionsRepository = InMemoryExtractionsRepository(store)
        self.notifications: NotificationsRepository = InMemoryNotificationsRepository(store)
        self.webhooks: WebhooksRepository = InMemoryWebhooksRepository(store)

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        self._saved = self._store.tables.copy()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._saved is not None:
                self._store.tables = self._saved
        finally:
            self._saved = None
            self._store.lock.release()

    def commit(self) -> None:
        self._saved = self._store.tables.copy()
        self.committed += 1
