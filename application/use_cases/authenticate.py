"""Who is calling the API: the admin (the operator's key) or one tenant (its own key)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from domain.errors import NotFound, Unauthorized


@frozen
class Principal:
    user_id: str | None
    is_admin: bool = False

    def require_access(self, user_id: str) -> None:
        """Another tenant's resources answer as if they did not exist."""
        if not self.is_admin and self.user_id != user_id:
            raise NotFound(f"user {user_id} not found")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise NotFound("not found")


def hash_api_key(api_key: str) -> str:
    # Keys are 256-bit random secrets, so a fast hash is enough and allows lookup by hash.
    return hashlib.sha256(api_key.encode()).hexdigest()


class Authenticate:
    def __init__(self, uow: Callable[[], UnitOfWork], admin_api_key: str) -> None:
        self._uow = uow
        self._admin_api_key = admin_api_key

    def __call__(self, api_key: str | None) -> Principal:
        if not api_key:
            raise Unauthorized("missing API key")
        if self._admin_api_key and hmac.compare_digest(api_key.encode(), self._admin_api_key.encode()):
            return Principal(user_id=None, is_admin=True)
        with self._uow() as uow:
            user = uow.users.by_api_key_hash(hash_api_key(api_key))
        if user is None:
            raise Unauthorized("invalid API key")
        return Principal(user_id=user.user_id)
