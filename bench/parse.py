"""CPU of reading one signed delivery's body, single-threaded: the webhook's parsing alone.

    python -m bench.parse [--rounds 5] [--bodies 5000]

The benchmark's own WhatsApp text delivery (`bench.load.build_delivery`), read by `read_delivery` (JSON,
made storable, structured into the channel's envelope classes), `--bodies` times per round; prints the
best round's microseconds per body. No server, no database: what the webhook spends before it stores.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from bench.load import build_delivery
from entrypoints.http.meta.envelope import read_delivery


def microseconds_per_body(raw: bytes, *, rounds: int, bodies: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(bodies):
            read_delivery(raw)
        best = min(best, time.process_time() - began)
    return best / bodies * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bodies", type=int, default=5000)
    args = parser.parse_args()
    raw = build_delivery(1, 5, 1, 0.0, 3, "secret", datetime.now(UTC), warmup=False).body
    per_body = microseconds_per_body(raw, rounds=args.rounds, bodies=args.bodies)
    print(f"read_delivery: {per_body:.1f} µs CPU per body ({len(raw)} bytes, best of {args.rounds} × {args.bodies})")


if __name__ == "__main__":
    main()
