"""Read-only views of a tenant's data for the REST API. Every query is scoped by user_id."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import MessageQuery, Page, UnitOfWork
from application.ports.services import BalanceCache
from domain.credits import Credits, LedgerEntry
from domain.errors import NotFound
from domain.messages import Message
from domain.tenancy import Agent, Channel, User


@frozen
class CreditsView:
    credits: Credits
    ledger: list[LedgerEntry]


class TenantQueries:
    def __init__(self, uow: Callable[[], UnitOfWork], balances: BalanceCache) -> None:
        self._uow = uow
        self._balances = balances

    def user(self, user_id: str) -> User:
        with self._uow() as uow:
            user = uow.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def channels(self, user_id: str) -> list[Channel]:
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return uow.channels.list(user_id)

    def agents(self, user_id: str) -> list[Agent]:
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return uow.agents.list(user_id)

    def agent(self, user_id: str, agent_id: str) -> Agent:
        with self._uow() as uow:
            agent = uow.agents.get(user_id, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    def balance(self, user_id: str) -> Credits:
        cached = self._balances.get(user_id)
        if cached is not None:
            return cached
        with self._uow() as uow:
            self._require_user(uow, user_id)
            credits = uow.credits.get(user_id)
        self._balances.put(credits)
        return credits

    def credits(self, user_id: str, ledger_limit: int = 20) -> CreditsView:
        credits = self.balance(user_id)
        with self._uow() as uow:
            ledger = uow.credits.ledger(user_id, ledger_limit)
        return CreditsView(credits=credits, ledger=ledger)

    def messages(self, user_id: str, query: MessageQuery) -> Page[Message]:
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return uow.messages.list(user_id, query)

    @staticmethod
    def _require_user(uow: UnitOfWork, user_id: str) -> None:
        if uow.users.get(user_id) is None:
            raise NotFound(f"user {user_id} not found")
