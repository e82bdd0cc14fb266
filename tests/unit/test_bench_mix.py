"""The benchmark's channel mix: which number is which channel, what each delivery looks like, and the figures
split per channel type (bench/mix.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.analysis import Reply
from bench.load import Results, Schedule, Step, accepted_status, build_schedule
from bench.mix import (
    INSTAGRAM,
    WEBCHAT,
    WHATSAPP,
    Channels,
    Visitor,
    WebchatReplyLog,
    cost_row,
    cost_table,
    instagram_account_id,
    instagram_customer_id,
    parse_channels,
    per_channel_figures,
)
from entrypoints.http.signature import sign

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SECRET = "s"


def _mix(numbers: int = 3, customers: int = 6) -> Channels:
    channels = Channels([WHATSAPP, INSTAGRAM, WEBCHAT], numbers)
    for n in range(numbers):
        channels.ids[n] = channels.default_id(n) if channels.type_of(n) != WEBCHAT else f"wc_{n}"
    for c in range(customers):
        if channels.type_of_customer(c) == WEBCHAT:
            channels.visitors[(False, c)] = Visitor(f"token{c}", f"vis_{c}")
    return channels


def test_channel_lists_are_read_in_order_and_unknown_or_repeated_types_refused() -> None:
    assert parse_channels("whatsapp, instagram,webchat") == [WHATSAPP, INSTAGRAM, WEBCHAT]
    for bad in ("whatsapp,sms", "", "webchat,webchat"):
        with pytest.raises(ValueError, match="--channels"):
            parse_channels(bad)


def test_numbers_take_the_types_in_turn_and_a_customer_keeps_its_numbers_type() -> None:
    channels = _mix(numbers=5)
    assert [channels.type_of(n) for n in range(5)] == [WHATSAPP, INSTAGRAM, WEBCHAT, WHATSAPP, INSTAGRAM]
    assert channels.type_of_customer(7) == WEBCHAT  # customer 7 writes to number 2


def test_an_instagram_delivery_is_a_signed_instagram_webhook_from_the_customers_igsid() -> None:
    channels = _mix()
    delivery = channels.build_delivery(0, 4, 2, 0.5, 1, SECRET, NOW, warmup=False)
    payload = json.loads(delivery.body)
    event = payload["entry"][0]["messaging"][0]
    assert payload["object"] == "instagram"
    assert event["sender"] == {"id": instagram_customer_id(4)}
    assert event["recipient"] == {"id": instagram_account_id(1)}
    assert event["message"]["text"] == "c00004-m00002"
    assert event["timestamp"] == int(NOW.timestamp() * 1000)
    assert delivery.path is None
    assert delivery.headers()["X-Hub-Signature-256"] == sign(delivery.body, SECRET)


def test_a_web_chat_message_goes_to_its_widget_with_the_visitors_token_and_no_signature() -> None:
    channels = _mix()
    delivery = channels.build_delivery(3, 5, 1, 0.0, 2, SECRET, NOW, warmup=False)
    assert delivery.path == "/webchat/wc_2/messages"
    assert delivery.headers() == {"Content-Type": "application/json", "Authorization": "Bearer token5"}
    assert json.loads(delivery.body) == {"text": "c00005-m00001", "client_message_id": "bench-c5-1"}
    assert accepted_status(delivery, 202) == 200
    assert accepted_status(delivery, 429) == 429


def test_a_mixed_schedule_is_the_whatsapp_schedule_with_each_customer_on_its_channel() -> None:
    channels = _mix(customers=40)
    common = {"steps": [Step(20, 2)], "customers": 40, "numbers": 3, "burst_fraction": 0.1, "max_messages": 40}
    mixed = build_schedule(**common, secret=SECRET, seed=5, build=channels.build_delivery)  # type: ignore[arg-type]
    plain = build_schedule(**common, secret=SECRET, seed=5)  # type: ignore[arg-type]
    assert [(d.customer, d.seq, d.due) for d in mixed.deliveries] == [
        (d.customer, d.seq, d.due) for d in plain.deliveries
    ]
    paths = {channels.type_of_customer(d.customer): d.path for d in mixed.deliveries}
    assert paths[WHATSAPP] is None and paths[INSTAGRAM] is None and paths[WEBCHAT] == "/webchat/wc_2/messages"


def test_a_whatsapp_number_in_a_mix_gets_the_usual_whatsapp_delivery() -> None:
    delivery = _mix().build_delivery(0, 3, 1, 0.0, 0, SECRET, NOW, warmup=False)
    assert json.loads(delivery.body)["object"] == "whatsapp_business_account"
    assert accepted_status(delivery, 202) == 202  # a webhook answers 200, nothing else counts


def _schedule_and_results(channels: Channels) -> tuple[Schedule, Results]:
    """Each of the six customers (two per channel type) sends one message, a tenth of a second apart."""
    deliveries = [channels.build_delivery(c, c, 1, c / 10, c % 3, SECRET, NOW, warmup=False) for c in range(6)]
    schedule = Schedule(deliveries, customers=6, numbers=3, duration_s=0.6, as_fast_as_possible=False)
    count = len(schedule.deliveries)
    results = Results([100.0 + i for i in range(count)], [100.01 + i for i in range(count)], [200] * count, [1] * count)
    return schedule, results


def test_each_channel_is_counted_on_its_own_replies_lost_and_misrouted_included() -> None:
    channels = _mix()
    schedule, results = _schedule_and_results(channels)
    replies = []
    for d in schedule.deliveries:
        kind = channels.type_of_customer(d.customer)
        if kind == INSTAGRAM:
            continue  # Instagram answers nothing: all lost
        to = channels.recipient_of(d.customer)
        if kind == WEBCHAT:
            to = "vis_someone_else"
        at = results.sent_at[d.index] + 1.2
        replies.append(Reply(at, channels.ids[d.customer % 3], to, f"echo: c{d.customer:05d}-m{d.seq:05d}"))
    figures = per_channel_figures(
        schedule,
        results,
        replies,
        channels,
        ai_latency_s=1.0,
        start_at=99.0,
        drive_end=106.0,
    )
    assert set(figures) == {WHATSAPP, INSTAGRAM, WEBCHAT}
    assert sum(part["messages"] for part in figures.values()) == len(schedule.deliveries)
    whatsapp, instagram, webchat = figures[WHATSAPP], figures[INSTAGRAM], figures[WEBCHAT]
    assert whatsapp["correctness"]["lost_messages"] == 0
    assert whatsapp["correctness"]["misrouted_replies"] == 0
    assert whatsapp["e2e"]["e2e_ms"]["p50"] == pytest.approx(1200.0)
    assert instagram["correctness"]["lost_messages"] == instagram["messages"] > 0
    assert webchat["correctness"]["misrouted_replies"] == webchat["e2e"]["replies_sent"] > 0


def test_web_chat_replies_from_the_database_land_on_the_monotonic_clock_once_each(tmp_path: Path) -> None:
    log = WebchatReplyLog(tmp_path / "sent.jsonl", "postgresql://unused", ["wc_2"])
    offset = log._clock_offset
    rows = [(7, 1_000.5, "wc_2", "vis_5", "echo: c00005-m00001 | c00005-m00002"), (8, 1_001.0, "wc_2", "vis_5", None)]
    log.add_rows(rows)
    log.add_rows(rows[:1])  # read again within the margin
    assert [reply.at for reply in log.replies] == [pytest.approx(1_000.5 - offset), pytest.approx(1_001.0 - offset)]
    assert log.answered == {("c", 5, 1), ("c", 5, 2)}
    assert log.replies[0].to == "vis_5"


def _run(web: float, workers: float, *, error: str | None = None) -> dict[str, object]:
    if error:
        return {"error": error}
    return {
        "cpu": {
            "cpu_ms_per_message": web + workers,
            "service_cpu_ms_per_message": {"web": web, "workers": workers},
            "infra_cpu_ms_per_message": {"postgres": 3.0, "redis": 0.75},
        },
        "e2e": {"replies_per_s": 90.0, "messages_per_reply": 1.5, "overhead_ms": {"p50": 1234.4, "p99": 5000.0}},
        "correctness": {"ordering_violations": 0, "duplicate_messages": 0, "lost_messages": 2},
    }


def test_the_cost_table_compares_each_channels_cpu_per_message_with_whatsapps() -> None:
    rows = [
        cost_row(WHATSAPP, _run(3.0, 10.0)),
        cost_row(INSTAGRAM, _run(3.0, 10.65)),
        cost_row(WEBCHAT, _run(0, 0, error="RuntimeError('x')")),
    ]
    table = cost_table(rows).splitlines()
    assert (
        table[2] == "| whatsapp | 90.0 | 1.5 | 13.00 (3.00 + 10.00) | +0.0 % | 3.00 / 0.75 | 1234 / 5000 | 0 / 0 / 2 |"
    )
    assert "| 13.65 (3.00 + 10.65) | +5.0 % |" in table[3]
    assert table[4].startswith("| webchat | error: RuntimeError('x')")
