"""Read-only views of a tenant's data for the REST API. Every query is scoped by user_id."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import (
    ConversationPage,
    ConversationQuery,
    MessageQuery,
    Page,
    UnitOfWork,
)
from application.ports.services import BalanceCache
from domain.conversations import Conversation
from domain.credits import Credits, LedgerEntry
from domain.errors import NotFound
from domain.messages import Message
from domain.tenancy import Agent, Channel, User


@frozen
class CreditsView:
    credits: Credits
    ledger: list[LedgerEntry]
    #: Where the older entries are (`ledger_page(before=…)`); None when `ledger` holds them all.
    ledger_next_cursor: int | None = None


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
            ledger = self._ledger(uow, user_id, ledger_limit, None)
        return CreditsView(credits=credits, ledger=list(ledger.items), ledger_next_cursor=ledger.next_cursor)

    def ledger(self, user_id: str, limit: int, before: int | None = None) -> Page[LedgerEntry]:
        """The ledger newest first, a page at a time (`before` is the previous page's `next_cursor`)."""
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return self._ledger(uow, user_id, limit, before)

    @staticmethod
    def _ledger(uow: UnitOfWork, user_id: str, limit: int, before: int | None) -> Page[LedgerEntry]:
        # One more than asked tells whether there is a next page without a count query.
        entries = uow.credits.ledger(user_id, limit + 1, before=before)
        items = entries[:limit]
        return Page(items=items, next_cursor=items[-1].entry_id if len(entries) > limit else None)

    def conversations(self, user_id: str, query: ConversationQuery) -> ConversationPage:
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return uow.conversations.list(user_id, query)

    def conversation(self, user_id: str, conversation_id: int) -> Conversation:
        with self._uow() as uow:
            conversation = uow.conversations.get(conversation_id)
        # Another tenant's conversation does not exist, as far as this one can tell.
        if conversation is None or conversation.user_id != user_id:
            raise NotFound(f"conversation {conversation_id} not found")
        return conversation

    def messages(self, user_id: str, query: MessageQuery) -> Page[Message]:
        with self._uow() as uow:
            self._require_user(uow, user_id)
            return uow.messages.list(user_id, query)

    @staticmethod
    def _require_user(uow: UnitOfWork, user_id: str) -> None:
        if uow.users.get(user_id) is None:
            raise NotFound(f"user {user_id} not found")
