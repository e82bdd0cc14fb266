"""The benchmark's own database helper, on the machine's PostgreSQL: its end-of-run figures (how many of
the accepted messages are durable) come from queries with `%` in their patterns."""

from __future__ import annotations

from bench.system import Database
from tests.conftest import PG_ADMIN_URL


def test_a_query_without_parameters_takes_a_like_pattern_and_one_with_them_binds_them() -> None:
    database = Database(PG_ADMIN_URL)
    database.create()
    try:
        assert database.query("SELECT count(*) FROM messages WHERE text LIKE 'c%'") == [(0,)]
        assert database.query("SELECT %s LIKE 'c%%'", ("cat",)) == [(True,)]
    finally:
        database.drop()
