"""What the integration tests share beyond `tests/conftest.py`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from adapters.redis.client import redis_client


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test Redis database (emptied before the test), as the service builds them."""
    client = redis_client(redis_url, socket_timeout_s=2)
    yield client
    client.close()
