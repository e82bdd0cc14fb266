"""The PostgreSQL unit of work: one pooled connection, one transaction per `with` block."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters.crypto import FernetTokenCipher
from adapters.postgres.conversations import PostgresConversationsRepository
from adapters.postgres.credits import PostgresCreditsRepository
from adapters.postgres.extractions import PostgresExtractionsRepository
from adapters.postgres.messages import PostgresMessagesRepository
from adapters.postgres.notifications import PostgresNotificationsRepository
from adapters.postgres.seats import PostgresSeatsRepository
from adapters.postgres.tenancy import PostgresAgentsRepository, PostgresChannelsRepository, PostgresUsersRepository
from adapters.postgres.webhooks import PostgresWebhooksRepository
from application.ports.lead_storage import ExtractionsRepository, NotificationsRepository, WebhooksRepository
from application.ports.repositories import (
    AgentsRepository,
    ChannelsRepository,
    ConversationsRepository,
    CreditsRepository,
    MessagesRepository,
    SeatsRepository,
    StorageUnavailable,
    UsersRepository,
)


class PostgresUnitOfWork:
    """`with uow: ...; uow.commit()`. Whatever is not committed is rolled back when the block ends.

    The connection is taken from the pool on entry and given back on exit, so a unit of work holds
    a connection only while its block runs; the same instance can be entered again afterwards.
    The transaction begins with the first statement (psycopg's default); after `commit()` the next
    statement begins a new one. Channel access tokens and webhook secrets are encrypted with `cipher` on
    the way in and decrypted on the way out.
    """

    def __init__(self, pool: ConnectionPool, *, cipher: FernetTokenCipher) -> None:
        self._pool = pool
        self._connection = _Held()
        # Typed as the ports: a Protocol's attributes are invariant.
        self.users: UsersRepository = PostgresUsersRepository(self._connection)
        self.channels: ChannelsRepository = PostgresChannelsRepository(self._connection, cipher=cipher)
        self.agents: AgentsRepository = PostgresAgentsRepository(self._connection)
        self.credits: CreditsRepository = PostgresCreditsRepository(self._connection)
        self.conversations: ConversationsRepository = PostgresConversationsRepository(self._connection)
        self.messages: MessagesRepository = PostgresMessagesRepository(self._connection)
        self.seats: SeatsRepository = PostgresSeatsRepository(self._connection)
        self.extractions: ExtractionsRepository = PostgresExtractionsRepository(self._connection)
        self.notifications: NotificationsRepository = PostgresNotificationsRepository(self._connection)
        self.webhooks: WebhooksRepository = PostgresWebhooksRepository(self._connection, cipher=cipher)

    def __enter__(self) -> Self:
        if self._connection.conn is not None:
            raise RuntimeError("the unit of work is entered already")
        try:
            self._connection.conn = self._pool.getconn()
        except PoolTimeout as error:
            raise StorageUnavailable(f"no database connection became available: {error}") from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn, self._connection.conn = self._connection(), None
        try:
            if not conn.broken:
                conn.rollback()  # nothing is sent when no transaction is open
        finally:
            # The pool discards a broken connection and replaces it.
            self._pool.putconn(conn)
        if isinstance(exc, psycopg.OperationalError):
            # Connection-level failures (server gone, network) are the port's own error: callers
            # such as the webhook answer "try again later" instead of a generic failure.
            raise StorageUnavailable(f"the database connection failed: {exc}") from exc

    def commit(self) -> None:
        self._connection().commit()


class _Held:
    """The connection of the open block, as the repositories ask for it (`ConnectionSource`).

    Its own object, not a bound method of the unit of work: repositories holding the unit of work's method
    made each unit of work a reference cycle, left for the garbage collector; several are made per message,
    and the collector's passes over them paused every thread of a worker."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self.conn
