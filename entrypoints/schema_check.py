"""The start-up check of the web and worker processes: a release's code runs only on that release's schema.

A database `mcagent migrate` has not brought up to date, or one a newer release has migrated, stops
the process at once with one message saying what to do (`SchemaNotCurrent`), instead of every request
or job failing on a missing table or column.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from adapters.postgres.migrations import DatabaseUnreachable, verify_schema
from entrypoints.settings import Settings

log = logging.getLogger(__name__)


def refuse_unless_current_schema(settings: Settings) -> None:
    """For the web: raise SchemaNotCurrent unless the database is at this release's schema.

    A database that cannot be reached is no verdict: the web starts anyway, because its webhook must
    answer 503 while PostgreSQL is down (Meta then delivers again).
    """
    if settings.database_url is None:
        return
    try:
        verify_schema(settings.database_url)
    except DatabaseUnreachable as error:
        log.warning("schema_not_checked", extra={"reason": f"database unreachable: {error}"})


def wait_for_current_schema(
    settings: Settings,
    *,
    verify: Callable[[str], None] = verify_schema,
    sleep: Callable[[float], None] = time.sleep,
    first_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
) -> None:
    """For the workers: raise SchemaNotCurrent unless the database is at this release's schema.

    Workers can do nothing without PostgreSQL, so while it cannot be reached they wait for it (a doubling
    delay, logged) and check once it answers.
    """
    if settings.database_url is None:
        return
    delay_s = first_delay_s
    while True:
        try:
            verify(settings.database_url)
            return
        except DatabaseUnreachable as error:
            log.warning("database_unreachable_at_start", extra={"reason": str(error), "retry_in_s": delay_s})
            sleep(delay_s)
            delay_s = min(delay_s * 2, max_delay_s)
