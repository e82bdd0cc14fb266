"""Structured logs: one JSON object per line (or readable lines with LOG_FORMAT=console).

Application code logs with the standard library (`logging.getLogger(__name__).info("event",
extra={...})`); structlog renders those records and adds the correlation id bound for the current
request or job. Nothing logs a secret; as a last guard, a field named like one (`access_token`,
`token`, `authorization`, `api_key`, `…_secret`, `password`…, at any depth) is rendered as
"[redacted]", and a bearer credential in any text (an exception's message or traceback included)
loses its value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

REDACTED = "[redacted]"
#: Field names that hold a secret: the name itself, or its last words (`x-api-key`, `webhook_secret`).
_SECRET_NAME = re.compile(
    r"(^|_)(access_token|token|authorization|api_key|apikey|secret|password|passwd|encryption_keys?)$",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(\bBearer\s+)[^\s'\",}]+", re.IGNORECASE)


def _record_extras(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return _BEARER.sub(r"\1" + REDACTED, value)
    if isinstance(value, Mapping):
        return {key: REDACTED if _is_secret_name(key) else _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and _SECRET_NAME.search(name.replace("-", "_")) is not None


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """The last guard: secret-named fields and bearer credentials never reach the output."""
    return {
        key: REDACTED if _is_secret_name(key) else value if key.startswith("_") else _redacted(value)
        for key, value in event_dict.items()
    }


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _record_extras,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter at INFO (every HTTP call of the SDKs, every RQ job line) drowns ours.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "rq.worker", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def bind_correlation_id(correlation_id: str | None) -> None:
    structlog.contextvars.clear_contextvars()
    if correlation_id:
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
