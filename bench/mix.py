"""A mix of channels for the benchmark: WhatsApp, Instagram and web chat customers side by side.

Number *n* (a channel with one agent) is of type `types[n % len(types)]`, and customer *c* writes to number
*c* mod numbers as in the WhatsApp-only run, so a mix has the same customers, numbers and schedule, only
delivered three ways:

- WhatsApp: a signed delivery to `/webhook/meta` (`bench.load.build_delivery`);
- Instagram: a signed `object: instagram` delivery to the same webhook, the customer an IGSID; the replies
  reach the Graph stand-in's `/{account}/messages` and are recorded with the WhatsApp ones;
- web chat: `POST /webchat/{widget}/messages` with the visitor's token (one session per visitor, opened
  before the clock starts). A web chat reply makes no HTTP call: it is stored and the visitor's streams are
  signalled, so its arrival is the reply part's `sent_at` in PostgreSQL (`WebchatReplyLog`), moved onto the
  monotonic clock of the rest of the figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.analysis import Reply, ReplyLog, ingest_figures, parse_inputs, reply_figures
from bench.load import Delivery, Results, Schedule, build_delivery, customer_wa_id, message_text, phone_number_id
from entrypoints.http.signature import sign

WHATSAPP, INSTAGRAM, WEBCHAT = "whatsapp", "instagram", "webchat"
CHANNEL_TYPES = (WHATSAPP, INSTAGRAM, WEBCHAT)

#: The service env a run with web chat needs: the widget's limits are for abuse, not for a load test.
WEBCHAT_ENV = {"WEBCHAT_VISITOR_PER_MINUTE": "1000000", "WEBCHAT_WIDGET_PER_MINUTE": "1000000"}


def parse_channels(text: str) -> list[str]:
    """`whatsapp,instagram,webchat` → the types in that order; unknown or repeated names are refused."""
    types = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in types if name not in CHANNEL_TYPES]
    if unknown or not types or len(set(types)) != len(types):
        raise ValueError(f"--channels {text!r}: a comma-separated list of distinct {', '.join(CHANNEL_TYPES)}")
    return types


def instagram_account_id(number: int) -> str:
    return f"1784{number:011d}"


def instagram_customer_id(customer: int, *, warmup: bool = False) -> str:
    return f"IG{'w' if warmup else 'c'}{customer:07d}"


def instagram_text(account: str, customer: str, text: str, *, mid: str, sent_at: datetime) -> dict[str, Any]:
    """An `object: instagram` delivery carrying one customer text message (Unix milliseconds)."""
    ms = int(sent_at.timestamp() * 1000)
    event = {
        "sender": {"id": customer},
        "recipient": {"id": account},
        "timestamp": ms,
        "message": {"mid": mid, "text": text},
    }
    return {"object": "instagram", "entry": [{"id": account, "time": ms, "messaging": [event]}]}


@dataclass(frozen=True)
class Visitor:
    token: str
    visitor_id: str


@dataclass
class Channels:
    """The channel of every number, and what a customer of each needs to write."""

    types: list[str]
    numbers: int
    #: number → its id: the WhatsApp phone-number id, the Instagram account id or the widget id.
    ids: dict[int, str] = field(default_factory=dict)
    #: (warm-up?, customer) → the web chat visitor it writes as.
    visitors: dict[tuple[bool, int], Visitor] = field(default_factory=dict)

    def type_of(self, number: int) -> str:
        return self.types[number % len(self.types)]

    def type_of_customer(self, customer: int) -> str:
        return self.type_of(customer % self.numbers)

    def type_of_id(self) -> dict[str, str]:
        return {channel_id: self.type_of(number) for number, channel_id in self.ids.items()}

    def default_id(self, number: int) -> str:
        kind = self.type_of(number)
        return phone_number_id(number) if kind == WHATSAPP else instagram_account_id(number)

    def recipient_of(self, customer: int, *, warmup: bool = False) -> str:
        kind = self.type_of_customer(customer)
        if kind == INSTAGRAM:
            return instagram_customer_id(customer, warmup=warmup)
        if kind == WEBCHAT:
            return self.visitors[(warmup, customer)].visitor_id
        return customer_wa_id(customer, warmup=warmup)

    def build_delivery(
        self,
        index: int,
        customer: int,
        seq: int,
        due: float,
        number: int,
        secret: str,
        sent_at: datetime,
        *,
        warmup: bool,
    ) -> Delivery:
        kind = self.type_of(number)
        if kind == WHATSAPP:
            return build_delivery(index, customer, seq, due, number, secret, sent_at, warmup=warmup)
        text = message_text(customer, seq, warmup=warmup)
        prefix = "w" if warmup else "c"
        if kind == INSTAGRAM:
            payload = instagram_text(
                self.ids[number],
                instagram_customer_id(customer, warmup=warmup),
                text,
                mid=f"mid.bench.{prefix}{customer}.{seq}",
                sent_at=sent_at,
            )
            body = json.dumps(payload).encode()
            return Delivery(index, customer, seq, due, body, sign(body, secret))
        visitor = self.visitors[(warmup, customer)]
        body = json.dumps({"text": text, "client_message_id": f"bench-{prefix}{customer}-{seq}"}).encode()
        return Delivery(
            index, customer, seq, due, body, "", path=f"/webchat/{self.ids[number]}/messages", bearer=visitor.token
        )


def open_visitor_sessions(base_url: str, channels: Channels, customers: Iterable[tuple[bool, int]]) -> int:
    """One session per web chat customer, before the clock starts, as each visitor's widget would open it."""
    opened = 0
    with requests.Session() as session:
        for warmup, customer in customers:
            if channels.type_of_customer(customer) != WEBCHAT or (warmup, customer) in channels.visitors:
                continue
            widget = channels.ids[customer % channels.numbers]
            answer = session.post(f"{base_url}/webchat/{widget}/sessions", json={}, timeout=30)
            if answer.status_code != 201:
                raise RuntimeError(f"POST /webchat/{widget}/sessions: {answer.status_code} {answer.text[:300]}")
            body = answer.json()
            channels.visitors[(warmup, customer)] = Visitor(body["token"], body["visitor_id"])
            opened += 1
    return opened


_WEBCHAT_REPLIES = """
SELECT m.message_id, extract(epoch FROM m.sent_at)::float8, m.phone_number_id, c.customer_id, m.text
FROM messages m JOIN conversations c ON c.conversation_id = m.conversation_id
WHERE m.direction = 'outbound' AND m.phone_number_id = ANY(%(widgets)s) AND m.sent_at >= %(since)s
"""


class WebchatReplyLog(ReplyLog):
    """The Graph stand-in's file (WhatsApp, Instagram) plus the web chat replies PostgreSQL holds as sent.

    A stored part's `sent_at` is wall-clock time: it becomes monotonic by the offset between the two clocks
    taken here (one machine, so one offset). The database is read at most once per `interval_s`, and only
    while the benchmark waits (warm-up, drain), never during the timed drive."""

    def __init__(self, path: Path, database_url: str, widgets: list[str], *, interval_s: float = 1.0) -> None:
        super().__init__(path)
        self.widgets = widgets
        self.interval_s = interval_s
        self._database_url = database_url
        self._seen: set[int] = set()
        self._since = 0.0
        self._last_read = 0.0
        self._clock_offset = time.time() - time.monotonic()
        self._connection: psycopg.Connection[Any] | None = None

    def poll(self) -> int:
        count = super().poll()
        if not self.widgets or time.monotonic() - self._last_read < self.interval_s:
            return count
        self._last_read = time.monotonic()
        if self._connection is None:
            self._connection = psycopg.connect(self._database_url, autocommit=True)
        rows = self._connection.execute(
            _WEBCHAT_REPLIES,
            {"widgets": self.widgets, "since": datetime.fromtimestamp(self._since).astimezone()},
        ).fetchall()
        self.add_rows(rows)
        return len(self.replies)

    def add_rows(self, rows: Iterable[tuple[int, float, str, str, str | None]]) -> None:
        with self._lock:
            for message_id, sent_epoch, widget, visitor, text in rows:
                if message_id in self._seen:
                    continue
                self._seen.add(message_id)
                # A part stored long before it was marked sent is still found: read back a margin each time.
                self._since = max(self._since, sent_epoch - 30.0)
                self.replies.append(Reply(sent_epoch - self._clock_offset, widget, visitor, text or ""))
                self.answered.update(parse_inputs(text or ""))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def split_by_channel(schedule: Schedule, results: Results, channels: Channels) -> dict[str, tuple[Schedule, Results]]:
    """The part of the schedule (and its results) of each channel type, re-indexed from 0."""
    parts: dict[str, tuple[Schedule, Results]] = {}
    for kind in channels.types:
        picked = [d for d in schedule.deliveries if channels.type_of_customer(d.customer) == kind]
        deliveries = [replace(d, index=j) for j, d in enumerate(picked)]
        sub_results = Results(
            [results.sent_at[d.index] for d in picked],
            [results.acked_at[d.index] for d in picked],
            [results.status[d.index] for d in picked],
            [results.attempts[d.index] for d in picked],
        )
        sub_schedule = Schedule(
            deliveries, schedule.customers, schedule.numbers, schedule.duration_s, schedule.as_fast_as_possible
        )
        parts[kind] = (sub_schedule, sub_results)
    return parts


def per_channel_figures(
    schedule: Schedule,
    results: Results,
    replies: list[Reply],
    channels: Channels,
    *,
    ai_latency_s: float,
    start_at: float,
    drive_end: float,
) -> dict[str, dict[str, Any]]:
    """Ingest, e2e and correctness figures per channel type of a mixed run (CPU cannot be split by channel:
    `--channel-costs` runs each type alone for that)."""
    kind_of_id = channels.type_of_id()
    out: dict[str, dict[str, Any]] = {}
    for kind, (sub_schedule, sub_results) in split_by_channel(schedule, results, channels).items():
        own = [reply for reply in replies if kind_of_id.get(reply.phone_number_id) == kind]
        e2e = reply_figures(
            sub_schedule,
            sub_results,
            own,
            ai_latency_s=ai_latency_s,
            start_at=start_at,
            drive_end=drive_end,
            recipient_of=channels.recipient_of,
        )
        e2e.pop("_answered_at")
        ingest = ingest_figures(sub_schedule, sub_results, start_at, drive_end)
        out[kind] = {
            "messages": len(sub_schedule.deliveries),
            "customers": len({d.customer for d in sub_schedule.deliveries}),
            "numbers": sum(1 for n in range(channels.numbers) if channels.type_of(n) == kind),
            "ingest": {key: ingest[key] for key in ("accepted_200", "non_200", "statuses", "ack_ms")},
            "correctness": e2e.pop("correctness"),
            "e2e": e2e,
        }
    return out


def cost_row(channel: str, run: dict[str, Any]) -> dict[str, Any]:
    """One line of the `--channel-costs` table from a run's report."""
    if run.get("error"):
        return {"channel": channel, "error": run["error"]}
    cpu, e2e, correctness = run["cpu"], run["e2e"], run["correctness"]
    return {
        "channel": channel,
        "answered_per_s": e2e["replies_per_s"],
        "messages_per_reply": e2e["messages_per_reply"],
        "service_cpu_ms_per_message": cpu["cpu_ms_per_message"],
        "web_ms": cpu["service_cpu_ms_per_message"]["web"],
        "workers_ms": cpu["service_cpu_ms_per_message"]["workers"],
        "postgres_ms": cpu["infra_cpu_ms_per_message"]["postgres"],
        "redis_ms": cpu["infra_cpu_ms_per_message"]["redis"],
        "overhead_p50_ms": e2e["overhead_ms"]["p50"],
        "overhead_p99_ms": e2e["overhead_ms"]["p99"],
        "ordering_dup_lost": [
            correctness["ordering_violations"],
            correctness["duplicate_messages"],
            correctness["lost_messages"],
        ],
    }


def cost_table(rows: list[dict[str, Any]], *, baseline: str = WHATSAPP) -> str:
    """The rows as a Markdown table, with each channel's service CPU per message against the baseline's."""
    base = next((row for row in rows if row["channel"] == baseline and "error" not in row), None)
    lines = [
        "| channel | answered/s | msg/turn | service CPU ms/msg (web + workers) | vs WhatsApp "
        "| PostgreSQL / Redis ms/msg "
        "| overhead p50 / p99 ms | ordering / dup / lost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['channel']} | error: {row['error']} | | | | | | |")
            continue
        versus = _versus(row["service_cpu_ms_per_message"], base["service_cpu_ms_per_message"] if base else None)
        lines.append(
            f"| {row['channel']} | {row['answered_per_s']} | {row['messages_per_reply']} "
            f"| {row['service_cpu_ms_per_message']:.2f} ({row['web_ms']:.2f} + {row['workers_ms']:.2f}) | {versus} "
            f"| {row['postgres_ms']:.2f} / {row['redis_ms']:.2f} "
            f"| {_ms(row['overhead_p50_ms'])} / {_ms(row['overhead_p99_ms'])} "
            f"| {' / '.join(str(count) for count in row['ordering_dup_lost'])} |"
        )
    return "\n".join(lines)


def _versus(value: float, base: float | None) -> str:
    if base is None or base <= 0:
        return "—"
    return f"{100 * (value - base) / base:+.1f} %"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def recipient_function(channels: Channels | None) -> Callable[[int], str]:
    return channels.recipient_of if channels is not None else customer_wa_id
