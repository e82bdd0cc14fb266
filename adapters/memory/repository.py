"""The base of every in-memory repository: the store it reads, through its current tables."""

from __future__ import annotations

from adapters.memory.tables import InMemoryStore, Tables


class InMemoryRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    @property
    def t(self) -> Tables:
        # Looked up on every use: a rollback replaces the store's tables.
        return self._store.tables
