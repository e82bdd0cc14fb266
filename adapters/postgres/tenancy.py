"""Users, channels (`phone_numbers`) and agents in PostgreSQL.

A channel's access token is stored encrypted (adapters/crypto.py): `_token_column` is the one place
that turns a token into what `access_token` holds and `_channel` the one that turns a row back into
a Channel, so every method that writes or reads a channel goes through the cipher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from attrs import evolve
from psycopg.rows import DictRow

from adapters.crypto import FernetTokenCipher, TokenUndecryptable
from adapters.postgres._sql import ConnectionSource, PostgresRepository, conflicts
from adapters.postgres.rows import entity
from domain.errors import Conflict
from domain.tenancy import Agent, Channel, Route, User

_USER_COLUMNS = "user_id, email, company_name, api_key_hash, created_at"
_CHANNEL_COLUMNS = (
    "phone_number_id, user_id, type, external_number, access_token, display_name, created_at, deleted_at, bot, "
    "allowed_origins"
)
_AGENT_COLUMNS = (
    "agent_id, user_id, phone_number_id, name, prompt_id, prompt_version, created_at, deleted_at, extraction_prompt_id"
)

# A registration of a phone_number_id the same tenant deleted brings that channel back (with its history)
# as registered now; anyone else's, or one not deleted, is a conflict.
_ADD_CHANNEL = f"""
INSERT INTO phone_numbers AS p ({_CHANNEL_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, %s, %s)
ON CONFLICT (phone_number_id) DO UPDATE
SET type = excluded.type, external_number = excluded.external_number, access_token = excluded.access_token,
    display_name = excluded.display_name, created_at = excluded.created_at, deleted_at = NULL, bot = excluded.bot,
    allowed_origins = excluded.allowed_origins
WHERE p.deleted_at IS NOT NULL AND p.user_id = excluded.user_id
RETURNING phone_number_id
"""


class PostgresUsersRepository(PostgresRepository):
    def add(self, user: User) -> None:
        with conflicts(
            {
                "users_email_key": (f"the e-mail {user.email} is taken", "email"),
                "users_pkey": (f"user {user.user_id} exists already", "user_id"),
                "users_api_key_hash_key": ("that API key is in use already", "api_key"),
            }
        ):
            self._cursor().execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                (user.user_id, user.email, user.company_name, user.api_key_hash, user.created_at),
            )

    def get(self, user_id: str) -> User | None:
        row = self._cursor().execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,)).fetchone()
        return None if row is None else entity(row, User)

    def by_api_key_hash(self, api_key_hash: str) -> User | None:
        row = (
            self._cursor()
            .execute(f"SELECT {_USER_COLUMNS} FROM users WHERE api_key_hash = %s", (api_key_hash,))
            .fetchone()
        )
        return None if row is None else entity(row, User)


class PostgresChannelsRepository(PostgresRepository):
    def __init__(self, connection: ConnectionSource, *, cipher: FernetTokenCipher) -> None:
        super().__init__(connection)
        self._cipher = cipher

    def _token_column(self, channel: Channel) -> str:
        return self._cipher.encrypt(channel.access_token)

    def _channel(self, row: Mapping[str, Any]) -> Channel:
        stored = entity(row, Channel)
        try:
            return evolve(stored, access_token=self._cipher.decrypt(stored.access_token))
        except TokenUndecryptable as error:
            raise TokenUndecryptable(f"channel {stored.phone_number_id}: {error}") from None

    def add(self, channel: Channel) -> None:
        with conflicts(
            {
                "phone_numbers_pkey": (
                    f"phone_number_id {channel.phone_number_id} is registered already",
                    "phone_number_id",
                )
            }
        ):
            added = self._cursor().execute(
                _ADD_CHANNEL,
                (
                    channel.phone_number_id,
                    channel.user_id,
                    channel.type.value,
                    channel.external_number,
                    self._token_column(channel),
                    channel.display_name,
                    channel.created_at,
                    channel.bot.value,
                    list(channel.allowed_origins),
                ),
            )
            if added.fetchone() is None:
                raise Conflict(
                    f"phone_number_id {channel.phone_number_id} is registered already", field="phone_number_id"
                )

    def update(self, channel: Channel) -> None:
        self._cursor().execute(
            "UPDATE phone_numbers SET display_name = %s, access_token = %s, bot = %s, allowed_origins = %s"
            " WHERE user_id = %s AND phone_number_id = %s",
            (
                channel.display_name,
                self._token_column(channel),
                channel.bot.value,
                list(channel.allowed_origins),
                channel.user_id,
                channel.phone_number_id,
            ),
        )

    def lock(self, user_id: str, phone_number_id: str) -> Channel | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers "
                "WHERE user_id = %s AND phone_number_id = %s AND deleted_at IS NULL FOR UPDATE",
                (user_id, phone_number_id),
            )
            .fetchone()
        )
        return None if row is None else self._channel(row)

    def get(self, user_id: str, phone_number_id: str) -> Channel | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers "
                "WHERE user_id = %s AND phone_number_id = %s AND deleted_at IS NULL",
                (user_id, phone_number_id),
            )
            .fetchone()
        )
        return None if row is None else self._channel(row)

    def list(self, user_id: str) -> list[Channel]:
        rows = self._cursor().execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers WHERE user_id = %s AND deleted_at IS NULL "
            "ORDER BY created_at, phone_number_id",
            (user_id,),
        )
        return [self._channel(row) for row in rows]

    def route(self, phone_number_id: str) -> Route | None:
        row = (
            self._cursor()
            .execute(
                """
                SELECT p.phone_number_id, p.user_id, p.type, p.external_number, p.access_token, p.display_name,
                       p.created_at, p.deleted_at, p.bot, p.allowed_origins,
                       a.agent_id AS agent_agent_id, a.user_id AS agent_user_id,
                       a.phone_number_id AS agent_phone_number_id, a.name AS agent_name,
                       a.prompt_id AS agent_prompt_id, a.prompt_version AS agent_prompt_version,
                       a.created_at AS agent_created_at, a.deleted_at AS agent_deleted_at,
                       a.extraction_prompt_id AS agent_extraction_prompt_id
                FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.phone_number_id
                WHERE p.phone_number_id = %s
                """,
                (phone_number_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        agent = None if row["agent_agent_id"] is None else entity(row, Agent, prefix="agent_")
        return Route(channel=self._channel(row), agent=agent)

    def save(self, channel: Channel) -> None:
        self._cursor().execute(
            "UPDATE phone_numbers SET deleted_at = %s WHERE phone_number_id = %s AND user_id = %s",
            (channel.deleted_at, channel.phone_number_id, channel.user_id),
        )


class PostgresAgentsRepository(PostgresRepository):
    def add(self, agent: Agent) -> None:
        with conflicts(
            {
                "agents_one_per_channel": (
                    f"channel {agent.phone_number_id} already has an agent",
                    "phone_number_id",
                ),
                "agents_pkey": (f"agent {agent.agent_id} exists already", "agent_id"),
            }
        ):
            self._cursor().execute(
                f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    agent.agent_id,
                    agent.user_id,
                    agent.phone_number_id,
                    agent.name,
                    agent.prompt_id,
                    agent.prompt_version,
                    agent.created_at,
                    agent.deleted_at,
                    agent.extraction_prompt_id,
                ),
            )

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_AGENT_COLUMNS} FROM agents WHERE user_id = %s AND agent_id = %s AND deleted_at IS NULL",
                (user_id, agent_id),
            )
            .fetchone()
        )
        return None if row is None else entity(row, Agent)

    def list(self, user_id: str) -> list[Agent]:
        rows = self._cursor().execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents WHERE user_id = %s AND deleted_at IS NULL "
            "ORDER BY created_at, agent_id",
            (user_id,),
        )
        return [entity(row, Agent) for row in rows]

    def holder(self, phone_number_id: str) -> Agent | None:
        row = (
            self._cursor()
            .execute(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE phone_number_id = %s", (phone_number_id,))
            .fetchone()
        )
        return None if row is None else entity(row, Agent)

    def save(self, agent: Agent) -> None:
        save_agent(self._cursor(), agent)


def save_agent(cursor: psycopg.Cursor[DictRow], agent: Agent) -> None:
    """An agent's change (name, prompts, link, deletion); Conflict when its channel has another agent."""
    with conflicts(
        {"agents_one_per_channel": (f"channel {agent.phone_number_id} already has an agent", "phone_number_id")}
    ):
        cursor.execute(
            """
            UPDATE agents SET phone_number_id = %s, name = %s, prompt_id = %s, prompt_version = %s, deleted_at = %s,
                              extraction_prompt_id = %s
            WHERE agent_id = %s AND user_id = %s
            """,
            (
                agent.phone_number_id,
                agent.name,
                agent.prompt_id,
                agent.prompt_version,
                agent.deleted_at,
                agent.extraction_prompt_id,
                agent.agent_id,
                agent.user_id,
            ),
        )
