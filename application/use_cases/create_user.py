"""The operator creates a tenant; its API key is shown once and stored only as a hash."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator
from application.use_cases.authenticate import hash_api_key
from domain.tenancy import User


@frozen
class CreateUserCommand:
    email: str
    company_name: str | None = None


@frozen
class CreatedUser:
    user: User
    api_key: str


class CreateUser:
    def __init__(self, uow: Callable[[], UnitOfWork], ids: IdGenerator, clock: Clock) -> None:
        self._uow = uow
        self._ids = ids
        self._clock = clock

    def __call__(self, command: CreateUserCommand) -> CreatedUser:
        api_key = self._ids.new_secret()
        user = User(
            user_id=self._ids.new_id("usr"),
            email=User.check_email(command.email),
            company_name=(command.company_name or "").strip() or None,
            api_key_hash=hash_api_key(api_key),
            created_at=self._clock.now(),
        )
        with self._uow() as uow:
            uow.users.add(user)
            uow.commit()
        return CreatedUser(user=user, api_key=api_key)
