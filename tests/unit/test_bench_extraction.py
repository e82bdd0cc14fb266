"""The benchmark's `extraction` entry: which worker process is which, and lead extraction's figures
(bench/procstats.py, bench/analysis.py)."""

from __future__ import annotations

from bench.analysis import ExtractionCounts, extraction_figures
from bench.procstats import ProcStat, children_by_start, supervisor_roles

BACKGROUND_QUEUE = "mcagent-background"


def _stat(pid: int, ppid: int, start: int) -> ProcStat:
    return ProcStat(
        pid=pid, comm="python", ppid=ppid, own_ticks=0, children_ticks=0, start=start, rss_bytes=0, system_ticks=0
    )


def _counts(extractions: int = 40) -> ExtractionCounts:
    return ExtractionCounts(
        extractions=extractions,
        conversations_read=35,
        notifications_by_kind={"hot_lead": 2, "smart_notification": 5},
        conversations_failing=1,
    )


def test_a_supervisors_children_come_in_the_order_it_started_them_and_grandchildren_are_left_out() -> None:
    stats = {
        40: _stat(40, 10, start=300),
        20: _stat(20, 10, start=100),
        30: _stat(30, 10, start=200),
        50: _stat(50, 40, start=400),
        60: _stat(60, 1, start=150),
    }
    assert children_by_start(10, stats) == [20, 30, 40]


def test_the_background_worker_is_the_child_serving_the_background_queue_and_the_sweeper_the_one_no_rq_worker() -> None:
    # A background worker restarted after the reply workers is still found: by its queue, not its position.
    rq_queues = {21: ["mcagent"], 22: ["mcagent"], 23: [BACKGROUND_QUEUE]}
    assert supervisor_roles([20, 21, 22, 23], rq_queues, BACKGROUND_QUEUE) == {"background": 23, "sweeper": 20}


def test_a_role_that_is_not_exactly_one_process_is_left_out_rather_than_guessed() -> None:
    # A reply worker not registered yet looks like a second sweeper; code without a background queue has none.
    assert supervisor_roles([20, 21, 22], {22: [BACKGROUND_QUEUE]}, BACKGROUND_QUEUE) == {"background": 22}
    assert supervisor_roles([20, 21, 22], {21: ["mcagent"], 22: ["mcagent"]}, BACKGROUND_QUEUE) == {"sweeper": 20}


def test_the_worker_groups_cpu_is_split_into_background_sweeper_and_the_rest_per_message_answered() -> None:
    figures = extraction_figures(
        _counts(extractions=40),
        answered=2000,
        workers_cpu_s=20.0,
        role_cpu_s={"background": 1.2, "sweeper": 0.2},
        roles_whole_window=True,
    )
    assert figures["extractions_stored"] == 40
    assert figures["conversations_read"] == 35
    assert figures["notifications_created"] == 7
    assert figures["extractions_per_message"] == 0.02
    assert figures["cpu_split"] == "per process"
    assert figures["worker_cpu_ms_per_message"] == {"background": 0.6, "sweeper": 0.1, "others": 9.3}
    assert figures["background_cpu_ms_per_extraction"] == 30.0


def test_without_a_background_worker_told_apart_only_the_whole_groups_cpu_is_reported_and_said_so() -> None:
    figures = extraction_figures(
        _counts(), answered=2000, workers_cpu_s=20.0, role_cpu_s={"sweeper": 0.2}, roles_whole_window=True
    )
    assert figures["cpu_split"].startswith("worker group only")
    assert figures["worker_cpu_ms_per_message"] == {"workers": 10.0}
    assert "background_cpu_ms_per_extraction" not in figures


def test_no_extraction_gives_no_cpu_per_extraction_and_a_dead_followed_process_is_flagged() -> None:
    figures = extraction_figures(
        _counts(extractions=0),
        answered=2000,
        workers_cpu_s=20.0,
        role_cpu_s={"background": 0.4, "sweeper": 0.2},
        roles_whole_window=False,
    )
    assert figures["background_cpu_ms_per_extraction"] is None
    assert figures["extractions_per_message"] == 0
    assert figures["cpu_split"] == "per process, but a followed process died"
