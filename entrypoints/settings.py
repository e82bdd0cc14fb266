"""Every setting comes from the environment and is checked at start-up.

A missing or malformed value stops the process with one message naming every bad variable.
Durations are milliseconds, as in the seed, unless the name says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from attrs import field, frozen

from adapters.crypto import check_key, generate_key
from domain.messages import OrderingScope

T = TypeVar("T")

#: Defaults that let `mcagent dev` run with no configuration at all. Never used in production.
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
DEV_ADMIN_API_KEY = "dev-admin-key"
DEV_VERIFY_TOKEN = "dev-verify-token"

GENERATE_KEY_COMMAND = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid configuration — fix these environment variables:\n" + "\n".join(f"  - {p}" for p in problems)
        )


@frozen
class Settings:
    database_url: str | None
    database_pool_size: int
    database_timeout_ms: int
    redis_url: str | None
    openai_api_key: str | None
    #: The labelled offline responder answers instead of OpenAI (dev mode's default without a key).
    offline_responder: bool
    openai_base_url: str
    openai_timeout_ms: int
    openai_max_retries: int
    openai_backoff_ms: int
    webhook_secret: str
    webhook_verify_token: str
    webhook_path: str
    api_key_header: str
    admin_api_key: str
    #: Fernet keys for channel access tokens at rest: the first encrypts, all decrypt. Never in a repr.
    token_encryption_keys: tuple[str, ...] = field(repr=False)
    worker_concurrency: int
    worker_max_processes: int
    worker_threads: int
    scale_up_age_ms: int
    scale_down_idle_ms: int
    worker_sched_batch: bool
    queue_name: str
    ordering_scope: OrderingScope
    coalesce_window_ms: int
    credits_per_reply: int
    mark_as_read: bool
    typing_indicator: bool
    lock_ttl_ms: int
    recovery_interval_ms: int
    recovery_after_ms: int
    cache_ttl_s: int
    extraction_interval_ms: int
    credits_per_extraction: int
    extraction_model: str
    background_worker_threads: int
    outgoing_webhook_timeout_ms: int
    outgoing_webhook_allow_private: bool
    outgoing_webhook_retry_ms: int
    log_level: str
    log_format: str
    correlation_id_header: str
    whatsapp_api_base_url: str
    instagram_api_base_url: str
    graph_timeout_ms: int
    circuit_failures: int
    circuit_reset_ms: int
    upstream_patience_ms: int
    webchat_visitor_per_minute: int
    webchat_widget_per_minute: int
    webchat_stream_seconds: int
    webchat_max_streams: int
    port: int
    #: Count Redis round trips and PostgreSQL statements into a Redis hash (the benchmark reads it).
    io_counts: bool

    @property
    def embedded(self) -> bool:
        """No Postgres/Redis configured: run on the in-memory adapters with an in-process worker."""
        return self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
        """Read and check the settings. `dev` allows the embedded defaults (no database, dev secrets)."""
        reader = _Reader(os.environ if env is None else env)
        database_url = reader.text("DATABASE_URL", None)
        redis_url = reader.text("REDIS_URL", None)
        if (database_url is None) != (redis_url is None):
            reader.problem("DATABASE_URL and REDIS_URL: set both (production) or neither (embedded dev mode)")
        production = not dev
        if production and database_url is None:
            reader.problem("DATABASE_URL: required (postgresql://…); only `mcagent dev` runs without it")
        if production and redis_url is None:
            reader.problem("REDIS_URL: required (redis://…); only `mcagent dev` runs without it")
        if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
            reader.problem("DATABASE_URL: must start with postgresql://")
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            reader.problem("REDIS_URL: must start with redis://, rediss:// or unix://")

        openai_api_key = reader.text("OPENAI_API_KEY", None)
        # A stand-in must never answer real customers by accident: outside dev mode it is an explicit choice.
        offline_responder = reader.boolean("OFFLINE_RESPONDER", dev and openai_api_key is None)
        if offline_responder and openai_api_key is not None:
            reader.problem("OFFLINE_RESPONDER: true, but OPENAI_API_KEY is set too; unset one of them")
        if not offline_responder and openai_api_key is None:
            reader.problem(
                "OPENAI_API_KEY: required (sk-…); to answer customers with the labelled offline responder "
                "instead, set OFFLINE_RESPONDER=true"
            )

        settings = cls(
            database_url=database_url,
            database_pool_size=reader.integer("DATABASE_POOL_SIZE", 10, minimum=1),
            database_timeout_ms=reader.integer("DATABASE_TIMEOUT", 30_000, minimum=100),
            redis_url=redis_url,
            openai_api_key=openai_api_key,
            offline_responder=offline_responder,
            openai_base_url=reader.url("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            openai_timeout_ms=reader.integer("OPENAI_TIMEOUT", 30_000, minimum=100),
            openai_max_retries=reader.integer("OPENAI_MAX_RETRIES", 3, minimum=0),
            openai_backoff_ms=reader.integer("OPENAI_BACKOFF", 500, minimum=0),
            webhook_secret=reader.secret("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET if dev else None),
            webhook_verify_token=reader.secret("WEBHOOK_VERIFY_TOKEN", DEV_VERIFY_TOKEN if dev else None),
            webhook_path=reader.path("WEBHOOK_PATH", "/webhook/meta"),
            api_key_header=reader.text("API_KEY_HEADER", "x-api-key") or "x-api-key",
            admin_api_key=reader.secret("ADMIN_API_KEY", DEV_ADMIN_API_KEY if dev else None),
            # Required with a database: a key made up at start would lock every token out at the next one.
            # Embedded dev mode keeps tokens in process memory only, so a key of the moment does.
            token_encryption_keys=reader.fernet_keys("TOKEN_ENCRYPTION_KEYS", required=database_url is not None),
            worker_concurrency=(concurrency := reader.integer("WORKER_CONCURRENCY", 2, minimum=1)),
            worker_max_processes=reader.integer("WORKER_MAX_PROCESSES", concurrency, minimum=1),
            worker_threads=reader.integer("WORKER_THREADS", 32, minimum=1),
            scale_up_age_ms=reader.integer("SCALE_UP_AGE_MS", 2_000, minimum=100),
            scale_down_idle_ms=reader.integer("SCALE_DOWN_IDLE_MS", 30_000, minimum=1_000),
            worker_sched_batch=reader.boolean("WORKER_SCHED_BATCH", True),
            queue_name=reader.text("QUEUE_NAME", "mcagent") or "mcagent",
            ordering_scope=reader.choice("ORDERING_SCOPE", OrderingScope.CONVERSATION, OrderingScope),
            coalesce_window_ms=reader.integer("COALESCE_WINDOW_MS", 0, minimum=0),
            credits_per_reply=reader.integer("CREDITS_PER_REPLY", 1, minimum=0),
            mark_as_read=reader.boolean("MARK_AS_READ", True),
            typing_indicator=reader.boolean("TYPING_INDICATOR", True),
            lock_ttl_ms=reader.integer("LOCK_TTL_MS", 30_000, minimum=300),
            recovery_interval_ms=reader.integer("RECOVERY_INTERVAL_MS", 10_000, minimum=100),
            recovery_after_ms=reader.integer("RECOVERY_AFTER_MS", 30_000, minimum=100),
            cache_ttl_s=reader.integer("CACHE_TTL_SECONDS", 300, minimum=1),
            extraction_interval_ms=reader.integer("EXTRACTION_INTERVAL", 600_000, minimum=1_000),
            credits_per_extraction=reader.integer("CREDITS_PER_EXTRACTION", 0, minimum=0),
            extraction_model=reader.text("EXTRACTION_MODEL", "gpt-4.1-mini") or "gpt-4.1-mini",
            background_worker_threads=reader.integer("BACKGROUND_WORKER_THREADS", 16, minimum=1),
            outgoing_webhook_timeout_ms=reader.integer("OUTGOING_WEBHOOK_TIMEOUT", 5_000, minimum=100),
            # Tests and a business receiving on its own network allow it; the default keeps the service from
            # being pointed at the operator's private network through a webhook URL.
            outgoing_webhook_allow_private=reader.boolean("OUTGOING_WEBHOOK_ALLOW_PRIVATE", dev),
            outgoing_webhook_retry_ms=reader.integer("OUTGOING_WEBHOOK_RETRY_MS", 30_000, minimum=100),
            log_level=reader.choice_text("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            log_format=reader.choice_text("LOG_FORMAT", "json", ("json", "console")),
            correlation_id_header=reader.text("CORRELATION_ID_HEADER", "x-correlation-id") or "x-correlation-id",
            whatsapp_api_base_url=reader.url("WHATSAPP_API_BASE_URL", "https://graph.facebook.com/v24.0"),
            instagram_api_base_url=reader.url("INSTAGRAM_API_BASE_URL", "https://graph.instagram.com/v25.0"),
            graph_timeout_ms=reader.integer("GRAPH_TIMEOUT", 10_000, minimum=100),
            circuit_failures=reader.integer("CIRCUIT_FAILURES", 5, minimum=1),
            circuit_reset_ms=reader.integer("CIRCUIT_RESET_MS", 30_000, minimum=100),
            upstream_patience_ms=reader.integer("UPSTREAM_PATIENCE_MS", 3_600_000, minimum=0),
            webchat_visitor_per_minute=reader.integer("WEBCHAT_VISITOR_PER_MINUTE", 20, minimum=1),
            webchat_widget_per_minute=reader.integer("WEBCHAT_WIDGET_PER_MINUTE", 600, minimum=1),
            webchat_stream_seconds=reader.integer("WEBCHAT_STREAM_SECONDS", 25, minimum=1),
            webchat_max_streams=reader.integer("WEBCHAT_MAX_STREAMS", 4, minimum=0),
            port=reader.integer("PORT", 8000, minimum=1),
            io_counts=reader.boolean("IO_COUNTS", False),
        )
        if settings.worker_max_processes < settings.worker_concurrency:
            reader.problem("WORKER_MAX_PROCESSES: must be at least WORKER_CONCURRENCY")
        reader.raise_if_any()
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._problems: list[str] = []

    def problem(self, text: str) -> None:
        self._problems.append(text)

    def raise_if_any(self) -> None:
        if self._problems:
            raise ConfigError(self._problems)

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str | None) -> str | None:
        return self._raw(name) or default

    def secret(self, name: str, default: str | None) -> str:
        value = self._raw(name) or default
        if value is None:
            self.problem(f"{name}: required")
            return ""
        return value

    def fernet_keys(self, name: str, *, required: bool) -> tuple[str, ...]:
        """Comma-separated Fernet keys. A problem names the variable and the key's position, never the key."""
        raw = self._raw(name)
        if raw is None:
            if required:
                self.problem(
                    f"{name}: required wherever DATABASE_URL is set (comma-separated Fernet keys, the first "
                    f"encrypts); generate one with: {GENERATE_KEY_COMMAND}"
                )
                return ()
            return (generate_key(),)
        keys = tuple(key.strip() for key in raw.split(","))
        for position, key in enumerate(keys, start=1):
            try:
                check_key(key)
            except ValueError as error:
                what = "empty" if not key else str(error)
                self.problem(
                    f"{name}: key {position} of {len(keys)} is {what}; generate one with: {GENERATE_KEY_COMMAND}"
                )
        return keys

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        return self._parsed(name, default, int, f"a whole number >= {minimum}", lambda v: v >= minimum)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problem(f"{name}: must be true or false, got {raw!r}")
        return default

    def url(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not value.startswith(("http://", "https://")):
            self.problem(f"{name}: must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    def path(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not value.startswith("/"):
            self.problem(f"{name}: must start with '/', got {value!r}")
        return value

    def choice(self, name: str, default: OrderingScope, kind: type[OrderingScope]) -> OrderingScope:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return kind(raw.lower())
        except ValueError:
            self.problem(f"{name}: must be one of {', '.join(k.value for k in kind)}, got {raw!r}")
            return default

    def choice_text(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = (self._raw(name) or default).lower()
        if raw not in allowed:
            self.problem(f"{name}: must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw

    def _parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str, ok: Callable[[Any], bool]) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self.problem(f"{name}: must be {expected}, got {raw!r}")
            return default
        if not ok(value):
            self.problem(f"{name}: must be {expected}, got {raw!r}")
            return default
        return value
