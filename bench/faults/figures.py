"""From what was delivered, what reached the Graph stand-in and what the database holds to a scenario's counts,
its recovery time, and the report's Markdown table."""

from __future__ import annotations

from typing import Any

from bench.analysis import Reply, ms_summary, parse_inputs, reply_figures
from bench.load import NOT_SENT, Results, Schedule

#: Messages sent in the drive's first seconds are left out of the latency taken as normal: pools and caches
#: are still warming up.
WARM_UP_S = 2.0

#: How much later than the slowest answer before the fault an answer may come and still count as on time.
LATE_MARGIN_S = 1.0


def out_of_order(replies: list[Reply], start_at: float) -> int:
    """Messages answered after a later message of the same customer was: per customer, first answers must
    follow message order (a message answered again is a duplicate, counted apart)."""
    answered: set[tuple[int, int]] = set()
    highest: dict[int, int] = {}
    count = 0
    for reply in sorted(replies, key=lambda r: r.at):
        if reply.at < start_at:
            continue
        for prefix, customer, seq in parse_inputs(reply.text):
            if prefix != "c" or (customer, seq) in answered:
                continue
            answered.add((customer, seq))
            if seq < highest.get(customer, 0):
                count += 1
            highest[customer] = max(highest.get(customer, 0), seq)
    return count


def recovery(
    results: Results,
    answered_at: dict[int, float],
    *,
    start_at: float,
    fault_start: float,
    anchor: float,
    lost: int,
) -> dict[str, Any]:
    """How long after `anchor` (the fault's end, or its start for a one-shot fault) answers came late.

    On time means no later after the message's first delivery than the slowest answer to a message sent and
    answered before the fault, plus LATE_MARGIN_S. The service has recovered at the last late answer: every
    message delivered before then has been answered (the backlog is gone), and every answer after it came as
    fast as before the fault. Never, while a message is lost. Also the largest backlog: messages acknowledged
    and not yet answered, at any moment.
    """
    before = [
        answered_at[i] - results.sent_at[i]
        for i in answered_at
        if start_at + WARM_UP_S <= results.sent_at[i] and answered_at[i] < fault_start
    ]
    threshold = max(before) + LATE_MARGIN_S if before else None
    late = [at for i, at in answered_at.items() if threshold is not None and at - results.sent_at[i] > threshold]
    last_late = max(late, default=None)
    if lost or threshold is None:
        recovered_after = None
    else:
        recovered_after = max(0.0, last_late - anchor) if last_late is not None else 0.0
    changes = [(results.acked_at[i], 1) for i, status in enumerate(results.status) if status == 200]
    changes += [(at, -1) for i, at in answered_at.items() if results.status[i] == 200]
    backlog = peak = 0
    for _, change in sorted(changes):
        backlog += change
        peak = max(peak, backlog)
    return {
        "on_time_within_s": None if threshold is None else round(threshold, 2),
        "late_answers": len(late),
        "last_late_answer_s": None if last_late is None else round(last_late - start_at, 2),
        "recovered_after_s": None if recovered_after is None else round(recovered_after, 1),
        "backlog_peak": peak,
    }


def delivery_figures(
    schedule: Schedule,
    results: Results,
    replies: list[Reply],
    refused: list[Reply],
    *,
    ai_latency_s: float,
    start_at: float,
    drive_end: float,
    fault_start: float,
    anchor: float,
) -> dict[str, Any]:
    """The counts of a scenario (acknowledged, answered, lost, duplicated, out of order, …) and its recovery."""
    figures = reply_figures(
        schedule, results, replies, ai_latency_s=ai_latency_s, start_at=start_at, drive_end=drive_end
    )
    answered_at: dict[int, float] = figures.pop("_answered_at")
    correctness = figures["correctness"]
    sent = [i for i, status in enumerate(results.status) if status != NOT_SENT]
    acknowledged = [i for i in sent if results.status[i] == 200]
    # A message whose reply Meta refused in a way that may have gone out is not lost: the refusal is stored with
    # Meta's code, visible through the API, and never sent twice (the product's rule for ambiguous sends).
    refused_inputs = {key for reply in refused for key in parse_inputs(reply.text)}
    unanswered = [i for i in acknowledged if i not in answered_at]
    refused_by_design = [
        i for i in unanswered if ("c", schedule.deliveries[i].customer, schedule.deliveries[i].seq) in refused_inputs
    ]
    lost = [i for i in unanswered if i not in set(refused_by_design)]
    lost_names = [f"c{schedule.deliveries[i].customer:05d}-m{schedule.deliveries[i].seq:05d}" for i in lost]
    return {
        "counts": {
            "scheduled": len(schedule.deliveries),
            "not_sent": len(schedule.deliveries) - len(sent),
            "acknowledged": len(acknowledged),
            "never_acknowledged": len(sent) - len(acknowledged),
            "answered": len(answered_at),
            "lost": len(lost),
            "reply_refused_single_shot": len(refused_by_design),
            "duplicated": correctness["duplicate_messages"],
            "replies_sent_twice": correctness["identical_reply_texts"],
            "out_of_order": out_of_order(replies, start_at),
            "misrouted_replies": correctness["misrouted_replies"],
            "unattributed_replies": correctness["unattributed_replies"],
        },
        "lost_messages": lost_names,
        "redelivery": {
            "deliveries_redelivered": sum(1 for i in sent if results.attempts[i] > 1),
            "redeliveries": sum(results.attempts[i] - 1 for i in sent),
            "answers_other_than_200": dict(sorted(results.refusals.items())),
        },
        "latency": {
            "ack_ms": ms_summary([results.acked_at[i] - results.sent_at[i] for i in acknowledged], (50, 99)),
            "e2e_ms": figures["e2e_ms"],
            "messages_per_reply": figures["messages_per_reply"],
        },
        "recovery": recovery(
            results, answered_at, start_at=start_at, fault_start=fault_start, anchor=anchor, lost=len(lost)
        ),
        "_answered_at": answered_at,
    }


def problems(counts: dict[str, int]) -> list[str]:
    """What makes a scenario fail: any message lost, duplicated or answered out of order, misrouted, or
    never acknowledged (redelivered until the harness gave up)."""
    found = []
    for key, what in (
        ("lost", "lost"),
        ("duplicated", "duplicated"),
        ("out_of_order", "out of order"),
        ("misrouted_replies", "replies misrouted"),
        ("never_acknowledged", "deliveries never acknowledged"),
    ):
        if counts.get(key):
            found.append(f"{counts[key]} {what}")
    return found


def markdown(report: dict[str, Any]) -> str:
    """The table of every scenario, with the command, date and code it was measured with."""
    lines = [
        f"`{report['command']}`, {report['date']}, commit `{report['code']['commit']}`"
        f"{' (with uncommitted changes)' if report['code']['uncommitted_files'] else ''}, "
        f"{report['machine']['nproc']} cores; {report['load_description']}.",
        "",
        "| scenario | fault | acknowledged (redelivered) | answered | reply refused once, by design | lost "
        "| duplicated | out of order | AI calls / turn | recovery s | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["scenarios"]:
        if "counts" not in run:
            blanks = " | ".join(["—"] * 8)
            lines.append(f"| {run['scenario']} | {run['fault']} | {blanks} | error: {run.get('error')} |")
            continue
        counts = run["counts"]
        refused = sum(run["redelivery"]["answers_other_than_200"].values())
        recovered = run["recovery"]["recovered_after_s"]
        recovery = f"{recovered:.1f}" if recovered is not None else "never" if counts["lost"] else "—"
        per_turn = run["ai"]["calls_per_answered_turn"]
        lines.append(
            f"| {run['scenario']} | {run['fault']} "
            f"| {counts['acknowledged']} ({run['redelivery']['deliveries_redelivered']}; {refused} answers ≠ 200) "
            f"| {counts['answered']} | {counts['reply_refused_single_shot']} | {counts['lost']} "
            f"| {counts['duplicated']} | {counts['out_of_order']} "
            f"| {'—' if per_turn is None else f'{per_turn:.2f}'} "
            f"| {recovery} "
            f"| {'pass' if not run['problems'] else 'FAIL: ' + ', '.join(run['problems'])} |"
        )
    return "\n".join(lines) + "\n"
