"""From what was sent and what arrived at the Graph stand-in to the report's figures."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import TEXT_PATTERN, Results, Schedule, customer_wa_id
from bench.procstats import Sample


@dataclass(frozen=True)
class Reply:
    at: float  # monotonic s, arrival at the Graph stand-in
    phone_number_id: str
    to: str
    text: str


class ReplyLog:
    """Tails the Graph recorder's JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: list[Reply] = []
        self.answered: set[tuple[str, int, int]] = set()  # (prefix, customer, seq) named by a reply so far
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Read what arrived since the last poll; returns the number of replies so far."""
        with self._lock:
            try:
                with self.path.open("rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read()
            except FileNotFoundError:
                return len(self.replies)
            self._offset += len(chunk)
            data = self._partial + chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                if line.strip():
                    at, number, to, text = json.loads(line)
                    self.replies.append(Reply(float(at), str(number), str(to), str(text)))
                    self.answered.update(parse_inputs(str(text)))
            return len(self.replies)


def parse_inputs(text: str) -> list[tuple[str, int, int]]:
    if not text.startswith("echo: "):
        return []
    found = []
    for token in text[len("echo: ") :].split(" | "):
        match = TEXT_PATTERN.match(token.strip())
        if match:
            found.append((match[1], int(match[2]), int(match[3])))
    return found


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms_summary(seconds: Iterable[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    values = [value * 1000 for value in seconds]
    summary: dict[str, float | None] = {f"p{q}": _round(percentile(values, q)) for q in qs}
    summary["max"] = _round(max(values)) if values else None
    summary["mean"] = _round(sum(values) / len(values)) if values else None
    summary["count"] = len(values)
    return summary


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def overhead_floor(sent: Iterable[tuple[int, float]], ai_latency_s: float) -> list[float]:
    """Each message's overhead (e2e − AI latency) under a service that takes no time of its own: a customer's
    turn starts when their first waiting message arrives, or when their previous turn's reply is out if that is
    later, answers every message of theirs that arrived by then, and replies `ai_latency_s` later. What a
    message waits for its own conversation's AI call is in it: what remains is the order the guarantee keeps.
    `sent`: (customer, time) of every message, in any order. The benchmark gives it the schedule's times, at
    which a burst's messages are sent at once, and the times the harness really sent them: one after another,
    each after the last one's answer."""
    by_customer: dict[int, list[float]] = {}
    for customer, at in sent:
        by_customer.setdefault(customer, []).append(at)
    overheads: list[float] = []
    for times in by_customer.values():
        times.sort()
        free_at, first = -math.inf, 0
        while first < len(times):
            start = max(times[first], free_at)
            last = first
            while last < len(times) and times[last] <= start:
                last += 1
            free_at = start + ai_latency_s
            overheads.extend(free_at - at - ai_latency_s for at in times[first:last])
            first = last
    return overheads


def ingest_figures(schedule: Schedule, results: Results, start_at: float, end_at: float) -> dict[str, Any]:
    sent = [i for i, status in enumerate(results.status) if status != -1]
    ok = [i for i in sent if results.status[i] == 200]
    statuses: dict[str, int] = {}
    for i in sent:
        statuses[str(results.status[i])] = statuses.get(str(results.status[i]), 0) + 1
    first = min((results.sent_at[i] for i in sent), default=start_at)
    last = max((results.acked_at[i] for i in sent), default=end_at)
    window = max(last - first, 1e-9)
    lag = [max(0.0, results.sent_at[i] - (start_at + schedule.deliveries[i].due)) for i in sent]
    return {
        "scheduled": len(schedule.deliveries),
        "sent": len(sent),
        # As fast as possible, the schedule is only a cap: what was not sent in time says nothing.
        "not_sent": None if schedule.as_fast_as_possible else len(schedule.deliveries) - len(sent),
        "accepted_200": len(ok),
        "non_200": len(sent) - len(ok),
        "statuses": statuses,
        "connection_retries": results.retries,
        "window_s": round(window, 3),
        "deliveries_per_s": round(len(ok) / window, 1),
        "offered_per_s": round(len(sent) / window, 1),
        "ack_ms": ms_summary([results.acked_at[i] - results.sent_at[i] for i in ok], (50, 90, 99)),
        "generator_lag_ms": None if schedule.as_fast_as_possible else ms_summary(lag, (50, 99)),
        "errors": results.errors[:10],
    }


def reply_figures(
    schedule: Schedule,
    results: Results,
    replies: list[Reply],
    *,
    ai_latency_s: float,
    start_at: float,
    drive_end: float,
    recipient_of: Callable[[int], str] = customer_wa_id,
) -> dict[str, Any]:
    """Attribution of replies to messages, end-to-end latency, throughput and the correctness counts.

    `recipient_of(customer)` is whom a reply to that customer must be addressed to (a reply elsewhere is
    misrouted): the WhatsApp id by default, the IGSID or the web chat visitor id in a mix."""
    index_of: dict[tuple[int, int], int] = {(d.customer, d.seq): d.index for d in schedule.deliveries}
    answered_at: dict[int, float] = {}
    last_seq: dict[int, int] = {}
    last_reply_at: dict[int, float] = {}
    ordering_violations = duplicate_messages = duplicate_replies = identical_texts = 0
    unattributed = misrouted = warmup_replies = 0
    texts_seen: set[str] = set()
    turn_overheads: list[float] = []
    replies_in_window = 0
    for reply in sorted(replies, key=lambda r: r.at):
        if reply.at < start_at:
            continue
        inputs = parse_inputs(reply.text)
        if inputs and all(prefix == "w" for prefix, _, _ in inputs):
            warmup_replies += 1
            continue
        replies_in_window += 1
        if reply.text in texts_seen:
            identical_texts += 1
        texts_seen.add(reply.text)
        keys = [(customer, seq) for prefix, customer, seq in inputs if prefix == "c"]
        if not keys or any(key not in index_of for key in keys):
            unattributed += 1
            continue
        customers = {customer for customer, _ in keys}
        if len(customers) > 1 or reply.to.lstrip("+") != recipient_of(keys[0][0]):
            misrouted += 1
        repeated = False
        ready = 0.0
        for customer, seq in keys:
            index = index_of[(customer, seq)]
            if seq <= last_seq.get(customer, 0):
                ordering_violations += 1
            last_seq[customer] = max(last_seq.get(customer, 0), seq)
            if index in answered_at:
                duplicate_messages += 1
                repeated = True
            else:
                answered_at[index] = reply.at
            ready = max(ready, results.sent_at[index])
        if repeated:
            duplicate_replies += 1
        customer = keys[0][0]
        # A turn can start once its last input was sent and the previous reply to this customer went out.
        ready = max(ready, last_reply_at.get(customer, 0.0))
        last_reply_at[customer] = reply.at
        turn_overheads.append(reply.at - ready - ai_latency_s)
    accepted = {i for i, status in enumerate(results.status) if status == 200}
    lost = sorted(accepted - answered_at.keys())
    e2e = [answered_at[i] - results.sent_at[i] for i in answered_at]
    answered = len(answered_at)
    first_send = min((results.sent_at[i] for i in accepted), default=start_at)
    last_reply = max(answered_at.values(), default=first_send)
    window = max(last_reply - first_send, 1e-9)
    drive_s = max(drive_end - start_at, 1e-9)
    warm = min(ai_latency_s + 2.0, drive_s / 3)
    steady = [at for at in answered_at.values() if start_at + warm <= at <= drive_end]
    return {
        "messages_answered": answered,
        "replies_sent": replies_in_window,
        "messages_per_reply": round(answered / replies_in_window, 3) if replies_in_window else None,
        "window_s": round(window, 3),
        "replies_per_s": round(answered / window, 1),
        "steady_replies_per_s": round(len(steady) / max(drive_end - start_at - warm, 1e-9), 1),
        "e2e_ms": ms_summary(e2e),
        "overhead_ms": ms_summary([value - ai_latency_s for value in e2e]),
        "turn_overhead_ms": ms_summary(turn_overheads),
        "overhead_floor_ms": ms_summary(
            overhead_floor(
                [(schedule.deliveries[i].customer, schedule.deliveries[i].due) for i in accepted], ai_latency_s
            )
        ),
        # The same, at the times the harness really sent: a burst's later messages one after another, each
        # after the previous one's answer. What a service with the SPEC's coalescing window (0) cannot beat.
        "overhead_floor_as_sent_ms": ms_summary(
            overhead_floor([(schedule.deliveries[i].customer, results.sent_at[i]) for i in accepted], ai_latency_s)
        ),
        "correctness": {
            "ordering_violations": ordering_violations,
            "duplicate_replies": duplicate_replies,
            "duplicate_messages": duplicate_messages,
            "identical_reply_texts": identical_texts,
            "lost_messages": len(lost),
            "misrouted_replies": misrouted,
            "unattributed_replies": unattributed,
            "lost_examples": [
                f"c{schedule.deliveries[i].customer:05d}-m{schedule.deliveries[i].seq:05d}" for i in lost[:10]
            ],
        },
        "_answered_at": answered_at,
    }


@dataclass(frozen=True)
class ExtractionCounts:
    """What the run's lead extraction left in the database, over the measured window."""

    extractions: int  # `extractions` rows stored
    conversations_read: int  # distinct conversations among them
    notifications_by_kind: dict[str, int]  # `notifications` created
    conversations_failing: int  # conversations whose last reading failed, at the end (not in the window)


def extraction_figures(
    counts: ExtractionCounts,
    *,
    answered: int,
    workers_cpu_s: float,
    role_cpu_s: dict[str, float],
    roles_whole_window: bool,
) -> dict[str, Any]:
    """The report's `extraction` entry: what was read, and the worker group's CPU split by role.

    `role_cpu_s` has the CPU of the worker supervisor's children that could be told apart (`background`:
    the background worker, whose work is the extractions; `sweeper`, which finds them due); `others` is the
    rest of the group: the reply workers, the supervisor, and the sweeper when it was not told apart. With
    no background worker told apart, only the group's CPU is reported, as in `cpu`."""
    per = max(1, answered)
    extractions = counts.extractions
    out: dict[str, Any] = {
        "extractions_stored": extractions,
        "conversations_read": counts.conversations_read,
        "notifications_created": sum(counts.notifications_by_kind.values()),
        "notifications_by_kind": counts.notifications_by_kind,
        "conversations_failing_at_end": counts.conversations_failing,
        "extractions_per_message": round(extractions / per, 4),
    }
    if "background" not in role_cpu_s:
        out["cpu_split"] = "worker group only: the background worker could not be told apart"
        out["worker_cpu_ms_per_message"] = {"workers": round(1000 * workers_cpu_s / per, 3)}
        return out
    split = {name: round(1000 * cpu_s / per, 3) for name, cpu_s in sorted(role_cpu_s.items())}
    split["others"] = round(1000 * (workers_cpu_s - sum(role_cpu_s.values())) / per, 3)
    out["cpu_split"] = "per process" if roles_whole_window else "per process, but a followed process died"
    out["worker_cpu_ms_per_message"] = split
    out["background_cpu_s"] = round(role_cpu_s["background"], 2)
    out["background_cpu_ms_per_extraction"] = (
        round(1000 * role_cpu_s["background"] / extractions, 2) if extractions else None
    )
    return out


#: The fields of the service's `mcagent:io_counts` hash (IO_COUNTS) the report turns into figures per message.
IO_COUNTS = ("redis_round_trips", "pg_statements")
#: The report's name of each role counted by the service (the hash's field prefixes).
IO_ROLES = {"web": "web", "workers": "worker"}


def io_figures(before: dict[str, int], after: dict[str, int], *, per: int) -> dict[str, Any]:
    """The report's `io` entry: the Redis round trips and PostgreSQL statements the service counted between
    two readings of its hash, in all and per message (`per`), split web / workers where that role counted.

    A role that never flushed (no worker processes, or a worker that does not count) is left out, not 0."""
    per = max(1, per)
    out: dict[str, Any] = {}
    if not any(name in after for name in IO_COUNTS):
        out["note"] = "the service counted nothing: IO_COUNTS not set, or not honoured by this code"
        return out
    roles = [name for name, prefix in IO_ROLES.items() if any(f"{prefix}:{count}" in after for count in IO_COUNTS)]
    for count in IO_COUNTS:
        total = after.get(count, 0) - before.get(count, 0)
        out[count] = total
        split = {"all": round(total / per, 2)}
        for name in roles:
            field = f"{IO_ROLES[name]}:{count}"
            split[name] = round((after.get(field, 0) - before.get(field, 0)) / per, 2)
        out[f"{count}_per_message"] = split
    return out


def turn_figures(turns: int, *, answered: int, workers_cpu_s: float) -> dict[str, Any]:
    """AI turns started in the measured window, messages answered per turn and the worker group's CPU per turn."""
    return {
        "turns": turns,
        "messages_per_turn": round(answered / turns, 2) if turns else None,
        "worker_cpu_ms_per_turn": round(1000 * workers_cpu_s / turns, 2) if turns else None,
    }


def timeseries(
    results: Results,
    answered_at: dict[int, float],
    replies: list[Reply],
    samples: list[Sample],
    start_at: float,
    end_at: float,
) -> list[dict[str, Any]]:
    """One point per second from the start of the drive: offered, acks, replies, queue depth, processes, CPU."""
    seconds = max(1, math.ceil(end_at - start_at))
    offered = [0] * seconds
    acks = [0] * seconds
    answered = [0] * seconds
    reply_count = [0] * seconds

    def bucket(at: float) -> int | None:
        second = math.floor(at - start_at)
        return second if 0 <= second < seconds else None

    for i, status in enumerate(results.status):
        if status == -1:
            continue
        if (b := bucket(results.sent_at[i])) is not None:
            offered[b] += 1
        if status == 200 and (b := bucket(results.acked_at[i])) is not None:
            acks[b] += 1
    for at in answered_at.values():
        if (b := bucket(at)) is not None:
            answered[b] += 1
    for reply in replies:
        if (b := bucket(reply.at)) is not None:
            reply_count[b] += 1
    points: list[dict[str, Any]] = []
    previous_cpu: float | None = None
    previous_at: float | None = None
    by_second: dict[int, Sample] = {}
    for each in samples:
        if (b := bucket(each.at)) is not None:
            by_second[b] = each  # the last sample of each second
    for second in range(seconds):
        sample = by_second.get(second)
        cpu_pct = None
        if sample is not None:
            if previous_cpu is not None and previous_at is not None and sample.at > previous_at:
                cpu_pct = round(100 * (sample.service_cpu_s - previous_cpu) / (sample.at - previous_at), 1)
            previous_cpu, previous_at = sample.service_cpu_s, sample.at
        points.append(
            {
                "t": second,
                "offered": offered[second],
                "acks": acks[second],
                "answered": answered[second],
                "replies": reply_count[second],
                "queue_depth": sample.queue_depth if sample else None,
                "worker_processes": sample.supervisor_children if sample else None,
                "worker_tree_processes": sample.worker_tree_processes if sample else None,
                "service_cpu_pct": cpu_pct,
                "service_rss_mb": round(sample.service_rss_mb, 1) if sample else None,
                "postgres_backends": sample.postgres_backends if sample else None,
            }
        )
    return points
