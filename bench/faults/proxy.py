"""Extra network delay without traffic shaping: a TCP proxy in front of a local server that passes every chunk
on `delay_s` after it arrived, in order, in each direction, so each request/answer round trip takes
2 × `delay_s` longer. The delay can change while connections are open; what is already on its way keeps the
delay it got. A new connection's handshake is not delayed (the proxy accepts it at once), its first bytes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 65536


class DelayProxies:
    """An event loop on a thread of its own, serving any number of delaying proxies, all with the same delay."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._open: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxies", daemon=True)
        self._thread.start()

    def add(self, target_port: int) -> int:
        """Start a proxy in front of 127.0.0.1:`target_port`; returns the proxy's port."""
        server = self._call(asyncio.start_server(self._connect(target_port), "127.0.0.1", 0, backlog=256))
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def close_all() -> None:
            for server in self._servers:
                server.close()
            # Closing both ends of every connection ends its pipes: each read sees the end of its stream.
            for writer in list(self._open):
                writer.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if connections:
                await asyncio.wait(connections, timeout=5)

        self._call(close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def _connect(self, target_port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                client_writer.close()
                return
            writers = {client_writer, upstream_writer}
            self._open |= writers
            try:
                await asyncio.gather(
                    self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer)
                )
            finally:
                self._open -= writers
                for writer in writers:
                    writer.close()

        return serve

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read as it comes, write each chunk when its time is due; end of stream is passed on the same way."""
        loop = asyncio.get_running_loop()
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                at, chunk = await due.get()
                if (wait := at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while True:
                try:
                    chunk = await reader.read(_CHUNK)
                except OSError:
                    chunk = b""
                due.put_nowait((loop.time() + self.delay_s, chunk))
                if not chunk:
                    break
            await forwarding
        except OSError:
            writer.close()
        finally:
            if not forwarding.done():
                forwarding.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await forwarding
