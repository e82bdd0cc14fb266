"""OpenAI clients lent to one call at a time, so that no call walks a pool of a hundred connections.

The SDK's HTTP client keeps one connection pool, and on every request (twice: when it is added and when
it ends) the pool looks at each of its connections, polling the socket of every idle one to see
whether the server closed it. A worker process runs a hundred turns at once on one shared client, so
the pool holds up to a hundred connections and each call paid for all of them: about a fifth of the
OpenAI call's CPU in the benchmark's profile (`python -m bench.run --profile`).

Here each call borrows a client of its own and gives it back, and its pool holds the one connection
that call uses. The most recently returned client is lent first: under light load the same few
clients, and their kept-alive connections, serve every call, instead of a round of a hundred
connections that each go stale between uses. A client is made only when every other one is out, and
the certificates are loaded once for all of them: a client made the SDK's way costs 29–34 ms of CPU,
one on the shared context 0.14–0.19 ms (`python -m bench.clients`).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai


class OpenAIClients:
    def __init__(self, *, api_key: str, base_url: str | None, timeout_s: float) -> None:
        # The SDK's own trust, made once: the system's certificates, or SSL_CERT_FILE / SSL_CERT_DIR.
        certificates = ssl.create_default_context()
        self._make: Callable[[], openai.OpenAI] = lambda: openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=certificates),
        )
        self._idle: list[openai.OpenAI] = []
        self._made = 0
        self._lock = threading.Lock()

    @contextmanager
    def lent(self) -> Iterator[openai.OpenAI]:
        """A client that no other call uses until this one gives it back."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
            if client is None:
                self._made += 1
        if client is None:
            client = self._make()
        try:
            yield client
        finally:
            with self._lock:
                self._idle.append(client)

    @property
    def made(self) -> int:
        """How many clients were made: the most calls that were ever in flight at once."""
        return self._made
