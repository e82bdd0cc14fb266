"""The logging setup's last guard: a secret that reaches a log call anyway is not written out."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from entrypoints.logging_setup import REDACTED, configure_logging

TOKEN = "EAAGsecretTOKENvalue0123456789"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's logging set up as in production, writing to a buffer instead of stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "json")
    output = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    yield output
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(output: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]


def test_fields_named_like_secrets_are_redacted_at_any_depth(json_logs: io.StringIO) -> None:
    logging.getLogger("test.secrets").warning(
        "channel_seen",
        extra={
            "access_token": TOKEN,
            "token": TOKEN,
            "api_key": TOKEN,
            "webhook_secret": TOKEN,
            "request": {"headers": {"Authorization": TOKEN, "X-Api-Key": TOKEN}, "path": "/v24.0/pn/messages"},
            "phone_number_id": "pn_1",
        },
    )

    [line] = _lines(json_logs)
    assert TOKEN not in json.dumps(line)
    assert line["access_token"] == line["token"] == line["api_key"] == line["webhook_secret"] == REDACTED
    assert line["request"] == {
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED},
        "path": "/v24.0/pn/messages",
    }
    assert line["phone_number_id"] == "pn_1"


def test_structlog_calls_are_redacted_too(json_logs: io.StringIO) -> None:
    structlog.get_logger("test.secrets").warning("cache_entry_unreadable", key="mcagent:route:pn_1", lock_token=TOKEN)

    [line] = _lines(json_logs)
    assert line["lock_token"] == REDACTED
    assert line["key"] == "mcagent:route:pn_1"


def test_a_bearer_credential_in_a_message_or_a_traceback_loses_its_value(
    json_logs: io.StringIO,
) -> None:
    log = logging.getLogger("test.secrets")
    try:
        raise RuntimeError(f"upstream refused headers {{'Authorization': 'Bearer {TOKEN}'}}")
    except RuntimeError:
        log.exception("unhandled_error")
    log.warning("sent with Bearer %s", TOKEN)

    output = json.dumps(_lines(json_logs))
    assert TOKEN not in output
    assert output.count(f"Bearer {REDACTED}") == 3  # the exception's message, its traceback line, the message
