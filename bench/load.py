"""The load: a schedule of signed WhatsApp deliveries, built before the clock starts, and the threads that send it.

Every delivery carries one text message `c<customer>-m<n>` (n counts from 1 per customer), so that the
stand-in AI's reply, `echo: <input> | <input> …`, names every message it answers. A customer is always
sent by the same thread, one delivery after the other's answer, so each customer's messages reach the
service in order; bursts (2–4 messages of one customer back to back) share one due time.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from entrypoints.dev import whatsapp_text
from entrypoints.http.signature import sign

TEXT_PATTERN = re.compile(r"^([cw])(\d+)-m(\d+)$")

NOT_SENT = -1  # the generator stopped before this delivery's turn
CONNECTION_ERROR = 0  # no HTTP answer, even after reconnecting


def message_text(customer: int, seq: int, *, warmup: bool = False) -> str:
    return f"{'w' if warmup else 'c'}{customer:05d}-m{seq:05d}"


def customer_wa_id(customer: int, *, warmup: bool = False) -> str:
    return f"{'1666' if warmup else '1555'}{customer:07d}"


def phone_number_id(number: int) -> str:
    return f"10{number:013d}"


@dataclass(frozen=True)
class Step:
    rate: float  # messages per second; 0 = as fast as possible
    seconds: float


@dataclass
class Delivery:
    index: int
    customer: int
    seq: int
    due: float  # seconds after the start of the drive
    body: bytes
    signature: str
    #: Web chat: the visitor's endpoint and token; None = a signed Meta delivery to the sender's path.
    path: str | None = None
    bearer: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        if self.bearer is not None:
            return {"Content-Type": "application/json", "Authorization": f"Bearer {self.bearer}"}
        return {"Content-Type": "application/json", "X-Hub-Signature-256": self.signature}


#: What builds one delivery: (index, customer, seq, due, number, secret, sent_at, warmup=…).
DeliveryBuilder = Callable[..., Delivery]


@dataclass
class Schedule:
    deliveries: list[Delivery]
    customers: int
    numbers: int
    duration_s: float
    as_fast_as_possible: bool
    bursts: int = 0
    burst_messages: int = 0

    def number_of(self, customer: int) -> int:
        return customer % self.numbers


def build_delivery(
    index: int, customer: int, seq: int, due: float, number: int, secret: str, sent_at: datetime, *, warmup: bool
) -> Delivery:
    text = message_text(customer, seq, warmup=warmup)
    wamid = f"wamid.bench.{'w' if warmup else 'c'}{customer}.{seq}"
    payload = whatsapp_text(
        phone_number_id(number), customer_wa_id(customer, warmup=warmup), text, wamid=wamid, sent_at=sent_at
    )
    body = json.dumps(payload).encode()
    return Delivery(index, customer, seq, due, body, sign(body, secret))


def build_schedule(
    *,
    steps: list[Step],
    customers: int,
    numbers: int,
    burst_fraction: float,
    max_messages: int,
    secret: str,
    seed: int,
    build: DeliveryBuilder = build_delivery,
) -> Schedule:
    """Events in time order: one customer picked at random sends 1 message, or with `burst_fraction` 2–4.

    `build` makes each delivery (a WhatsApp one by default; `bench.mix` builds Instagram and web chat ones)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    deliveries: list[Delivery] = []
    next_seq = [1] * customers
    duration = sum(step.seconds for step in steps)
    fastest = all(step.rate <= 0 for step in steps)
    bursts = burst_messages = 0
    start = 0.0
    for step in steps:
        limit = max_messages if step.rate <= 0 else min(max_messages, len(deliveries) + round(step.rate * step.seconds))
        clock = start
        while len(deliveries) < limit:
            customer = rng.randrange(customers)
            size = rng.randint(2, 4) if rng.random() < burst_fraction else 1
            size = min(size, limit - len(deliveries))
            if size > 1:
                bursts += 1
                burst_messages += size
            due = 0.0 if step.rate <= 0 else clock
            for _ in range(size):
                seq = next_seq[customer]
                next_seq[customer] += 1
                deliveries.append(
                    build(len(deliveries), customer, seq, due, customer % numbers, secret, now, warmup=False)
                )
            if step.rate > 0:
                clock += size / step.rate
        start += step.seconds
    return Schedule(deliveries, customers, numbers, duration, fastest, bursts, burst_messages)


@dataclass(frozen=True)
class Redelivery:
    """What Meta does with a delivery not answered 200 (another status, or no answer): it delivers it again
    later, the gaps growing, until it is accepted. `give_up_after_s` bounds a run (Meta keeps trying for days)."""

    first_delay_s: float = 1.0
    max_delay_s: float = 10.0
    give_up_after_s: float = 180.0

    def waits(self, first_sent_at: float) -> Iterator[float]:
        """The wait before each redelivery; none once the next would start after `give_up_after_s`."""
        delay = self.first_delay_s
        while time.monotonic() + delay <= first_sent_at + self.give_up_after_s:
            yield delay
            delay = min(delay * 2, self.max_delay_s)


@dataclass
class Results:
    """Per delivery: when it was sent (first attempt) and answered (monotonic s), the final HTTP status, and how
    many times it was delivered (more than once only with a `Redelivery`)."""

    sent_at: list[float]
    acked_at: list[float]
    status: list[int]
    attempts: list[int] = field(default_factory=list)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    #: Every answer other than 200 across all deliveries and redeliveries, by status ("0": no HTTP answer).
    refusals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_count(cls, count: int) -> Results:
        return cls([0.0] * count, [0.0] * count, [NOT_SENT] * count, [0] * count)


class Sender(threading.Thread):
    """Sends its share of the schedule, in order, over one keep-alive connection."""

    def __init__(
        self,
        deliveries: list[Delivery],
        results: Results,
        *,
        port: int,
        path: str,
        start_at: float,
        stop_at: float,
        stop: threading.Event,
        lock: threading.Lock,
        redelivery: Redelivery | None = None,
    ) -> None:
        super().__init__(name="sender", daemon=True)
        self.deliveries = deliveries
        self.results = results
        self.port = port
        self.path = path
        self.start_at = start_at
        self.stop_at = stop_at
        self.stop_event = stop
        self.lock = lock
        self.redelivery = redelivery
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        try:
            for delivery in self.deliveries:
                due = self.start_at + delivery.due
                now = time.monotonic()
                if due > now and self.stop_event.wait(due - now):
                    return
                if self.stop_event.is_set() or time.monotonic() >= self.stop_at:
                    return
                self._send(delivery)
        finally:
            if self._conn is not None:
                self._conn.close()

    def _send(self, delivery: Delivery) -> None:
        sent_at = time.monotonic()
        status = self._deliver(delivery)
        attempts = 1
        waits = self.redelivery.waits(sent_at) if self.redelivery is not None else iter(())
        # Redelivered in place: the customer's later messages wait behind this one, so their order holds.
        while status != 200:
            self._count_refusal(status)
            wait = next(waits, None)
            if wait is None or self.stop_event.wait(wait):
                break
            status = self._deliver(delivery)
            attempts += 1
        i = delivery.index
        self.results.sent_at[i] = sent_at
        self.results.acked_at[i] = time.monotonic()
        self.results.status[i] = status
        self.results.attempts[i] = attempts

    def _count_refusal(self, status: int) -> None:
        with self.lock:
            self.results.refusals[str(status)] = self.results.refusals.get(str(status), 0) + 1

    def _deliver(self, delivery: Delivery) -> int:
        """One delivery: the HTTP status, or CONNECTION_ERROR."""
        headers = delivery.headers()
        status = CONNECTION_ERROR
        # A stale keep-alive connection fails on first use: reconnect and deliver again, as Meta redelivers
        # (the same message id: the service deduplicates it).
        for attempt in range(3):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self._conn.request("POST", delivery.path or self.path, delivery.body, headers)
                response = self._conn.getresponse()
                response.read()
                status = accepted_status(delivery, response.status)
                if response.will_close:
                    self._conn.close()
                    self._conn = None
                break
            except (OSError, http.client.HTTPException) as error:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                with self.lock:
                    if (
                        attempt > 0
                        or not isinstance(
                            error, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                        )
                    ) and len(self.results.errors) < 20:
                        self.results.errors.append(repr(error))
                    self.results.retries += 1
        return status


def accepted_status(delivery: Delivery, status: int) -> int:
    """A web chat message is accepted with 202 (200 for a repeated `client_message_id`): both count as the
    webhook's 200, so that every figure keyed on 200 reads the same for every channel."""
    return 200 if delivery.bearer is not None and status == 202 else status


def drive(
    schedule: Schedule,
    *,
    port: int,
    path: str,
    senders: int,
    grace_s: float,
    stop: threading.Event,
    start_at: float | None = None,
    redelivery: Redelivery | None = None,
) -> tuple[Results, float, float]:
    """Send the schedule; returns the results, the start (monotonic) and the end of the drive.

    `start_at` (monotonic, default: in 0.2 s) lets the caller time other things against the schedule; with a
    `redelivery`, a delivery not answered 200 is delivered again as Meta would.
    Bounded: no delivery is started after `duration + grace_s` (or after `duration` when sending as fast as
    possible), every request has a 30 s timeout, and redelivery stops after `give_up_after_s`."""
    results = Results.for_count(len(schedule.deliveries))
    shares: list[list[Delivery]] = [[] for _ in range(senders)]
    for delivery in schedule.deliveries:
        shares[delivery.customer % senders].append(delivery)
    start_at = time.monotonic() + 0.2 if start_at is None else start_at
    stop_at = start_at + schedule.duration_s + (0 if schedule.as_fast_as_possible else grace_s)
    lock = threading.Lock()
    threads = [
        Sender(
            share,
            results,
            port=port,
            path=path,
            start_at=start_at,
            stop_at=stop_at,
            stop=stop,
            lock=lock,
            redelivery=redelivery,
        )
        for share in shares
        if share
    ]
    for thread in threads:
        thread.start()
    patience = 35 + (redelivery.give_up_after_s if redelivery is not None else 0)
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + patience)
    stop.set()  # any thread still blocked ends after its current request
    return results, start_at, time.monotonic()
