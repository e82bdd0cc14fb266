"""The stand-in Graph API, run as a process of its own, writing every accepted text send to a file.

One JSON line per reply, in arrival order: `[monotonic_s, phone_number_id, to, text]` (for Instagram the
account id and the IGSID). `time.monotonic()`
is CLOCK_MONOTONIC, the same clock in every process of the machine, so the benchmark compares these
times with the send times of its deliveries directly.

    python -m bench.graph_recorder --port 8102 --out /tmp/sent.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from types import FrameType
from typing import Any, TextIO

from tests.support.standin_graph import StandInGraph
from tests.support.standin_server import Exchange


class RecordingGraph(StandInGraph):
    def __init__(self, out: TextIO, *, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0) -> None:
        super().__init__(host=host, port=port, latency_ms=latency_ms)
        self._out = out
        self._write_lock = threading.Lock()

    def _whatsapp(self, exchange: Exchange, account: str, body: dict[str, Any], authorization: str | None) -> None:
        arrived = time.monotonic()
        is_text = body.get("type") == "text" and body.get("status") != "read"
        super()._whatsapp(exchange, account, body, authorization)
        if is_text:
            self._record(arrived, account, str(body.get("to", "")), (body.get("text") or {}).get("body"))
        self._forget()

    def _instagram(self, exchange: Exchange, account: str, body: dict[str, Any], authorization: str | None) -> None:
        arrived = time.monotonic()
        text = (body.get("message") or {}).get("text")
        super()._instagram(exchange, account, body, authorization)
        if isinstance(text, str) and not isinstance(body.get("sender_action"), str):
            self._record(arrived, account, str(body["recipient"].get("id", "")), text)
        self._forget()

    def _record(self, arrived: float, account: str, to: str, text: Any) -> None:
        line = json.dumps([arrived, account, to, text]) + "\n"
        with self._write_lock:
            self._out.write(line)
            self._out.flush()

    def _forget(self) -> None:
        # The recorded requests are not needed by the benchmark: keep the process small over long runs.
        with self._state:
            self._requests.clear()
            self._sent.clear()
            self._reads.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description="Stand-in Graph API that records sends with their arrival time")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    done = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    with open(arguments.out, "a", encoding="utf-8") as out:
        server = RecordingGraph(out, host=arguments.host, port=arguments.port, latency_ms=arguments.latency_ms)
        server.start()
        print(f"RecordingGraph listening on {server.root_url}", flush=True)
        done.wait()
        server.stop()


if __name__ == "__main__":
    main()
