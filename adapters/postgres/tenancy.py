"""Users, channels (`phone_numbers`) and agents in PostgreSQL."""

from __future__ import annotations

from adapters.postgres._sql import PostgresRepository, conflicts
from adapters.postgres.rows import entity
from domain.tenancy import Agent, Channel, Route, User

_USER_COLUMNS = "user_id, email, company_name, api_key_hash, created_at"
_CHANNEL_COLUMNS = "phone_number_id, user_id, type, external_number, access_token, display_name, created_at, bot"
_AGENT_COLUMNS = "agent_id, user_id, phone_number_id, name, prompt_id, prompt_version, created_at"


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
    def add(self, channel: Channel) -> None:
        with conflicts(
            {
                "phone_numbers_pkey": (
                    f"phone_number_id {channel.phone_number_id} is registered already",
                    "phone_number_id",
                )
            }
        ):
            self._cursor().execute(
                f"INSERT INTO phone_numbers ({_CHANNEL_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    channel.phone_number_id,
                    channel.user_id,
                    channel.type.value,
                    channel.external_number,
                    channel.access_token,
                    channel.display_name,
                    channel.created_at,
                    channel.bot.value,
                ),
            )

    def update(self, channel: Channel) -> None:
        self._cursor().execute(
            "UPDATE phone_numbers SET display_name = %s, access_token = %s, bot = %s"
            " WHERE user_id = %s AND phone_number_id = %s",
            (channel.display_name, channel.access_token, channel.bot.value, channel.user_id, channel.phone_number_id),
        )

    def lock(self, user_id: str, phone_number_id: str) -> Channel | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers WHERE user_id = %s AND phone_number_id = %s FOR UPDATE",
                (user_id, phone_number_id),
            )
            .fetchone()
        )
        return None if row is None else entity(row, Channel)

    def get(self, user_id: str, phone_number_id: str) -> Channel | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers WHERE user_id = %s AND phone_number_id = %s",
                (user_id, phone_number_id),
            )
            .fetchone()
        )
        return None if row is None else entity(row, Channel)

    def list(self, user_id: str) -> list[Channel]:
        rows = self._cursor().execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM phone_numbers WHERE user_id = %s ORDER BY created_at, phone_number_id",
            (user_id,),
        )
        return [entity(row, Channel) for row in rows]

    def route(self, phone_number_id: str) -> Route | None:
        row = (
            self._cursor()
            .execute(
                """
                SELECT p.phone_number_id, p.user_id, p.type, p.external_number, p.access_token, p.display_name,
                       p.created_at, p.bot,
                       a.agent_id AS agent_agent_id, a.user_id AS agent_user_id,
                       a.phone_number_id AS agent_phone_number_id, a.name AS agent_name,
                       a.prompt_id AS agent_prompt_id, a.prompt_version AS agent_prompt_version,
                       a.created_at AS agent_created_at
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
        return Route(channel=entity(row, Channel), agent=agent)


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
                f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    agent.agent_id,
                    agent.user_id,
                    agent.phone_number_id,
                    agent.name,
                    agent.prompt_id,
                    agent.prompt_version,
                    agent.created_at,
                ),
            )

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        row = (
            self._cursor()
            .execute(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE user_id = %s AND agent_id = %s", (user_id, agent_id))
            .fetchone()
        )
        return None if row is None else entity(row, Agent)

    def list(self, user_id: str) -> list[Agent]:
        rows = self._cursor().execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents WHERE user_id = %s ORDER BY created_at, agent_id", (user_id,)
        )
        return [entity(row, Agent) for row in rows]
