"""Users (tenants) in memory."""

from __future__ import annotations

from adapters.memory.repository import InMemoryRepository
from domain.errors import Conflict
from domain.tenancy import User


class InMemoryUsersRepository(InMemoryRepository):
    def add(self, user: User) -> None:
        # The unique keys of the users table, checked in the order PostgreSQL reports them.
        if user.user_id in self.t.users:
            raise Conflict(f"user {user.user_id} exists already", field="user_id")
        if any(existing.email == user.email for existing in self.t.users.values()):
            raise Conflict(f"the e-mail {user.email} is taken", field="email")
        if any(existing.api_key_hash == user.api_key_hash for existing in self.t.users.values()):
            raise Conflict("that API key is in use already", field="api_key")
        self.t.users[user.user_id] = user

    def get(self, user_id: str) -> User | None:
        return self.t.users.get(user_id)

    def by_api_key_hash(self, api_key_hash: str) -> User | None:
        return next((u for u in self.t.users.values() if u.api_key_hash == api_key_hash), None)
