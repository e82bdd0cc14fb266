"""The benchmark's `io` entry and per-turn figures (bench/analysis.py): Redis round trips and PostgreSQL
statements per answered message from two readings of the service's IO_COUNTS hash, and CPU per AI turn."""

from __future__ import annotations

from bench.analysis import io_figures, turn_figures

BEFORE = {
    "redis_round_trips": 1_000,
    "pg_statements": 500,
    "web:redis_round_trips": 400,
    "web:pg_statements": 100,
    "worker:redis_round_trips": 600,
    "worker:pg_statements": 400,
}


def test_the_counts_of_the_window_are_the_difference_of_the_two_readings_per_message_answered() -> None:
    after = {
        "redis_round_trips": 31_000,
        "pg_statements": 40_500,
        "web:redis_round_trips": 6_400,
        "web:pg_statements": 12_100,
        "worker:redis_round_trips": 24_600,
        "worker:pg_statements": 28_400,
    }
    figures = io_figures(BEFORE, after, per=6_000)

    assert figures["redis_round_trips"] == 30_000
    assert figures["pg_statements"] == 40_000
    assert figures["redis_round_trips_per_message"] == {"all": 5.0, "web": 1.0, "workers": 4.0}
    assert figures["pg_statements_per_message"] == {"all": 6.67, "web": 2.0, "workers": 4.67}


def test_a_role_that_never_counted_is_left_out_rather_than_reported_as_zero() -> None:
    # Ingest only: no worker processes ran, so there is no worker figure to report.
    after = {
        "redis_round_trips": 2_000,
        "pg_statements": 3_000,
        "web:redis_round_trips": 2_000,
        "web:pg_statements": 3_000,
    }
    figures = io_figures({}, after, per=1_000)
    assert figures["redis_round_trips_per_message"] == {"all": 2.0, "web": 2.0}
    assert figures["pg_statements_per_message"] == {"all": 3.0, "web": 3.0}


def test_a_service_that_counted_nothing_is_said_so_instead_of_reporting_zero_round_trips() -> None:
    figures = io_figures({}, {}, per=1_000)
    assert "redis_round_trips_per_message" not in figures
    assert "IO_COUNTS" in figures["note"]


def test_worker_cpu_and_messages_are_divided_by_the_turns_started_in_the_window() -> None:
    assert turn_figures(3_000, answered=6_000, workers_cpu_s=48.0) == {
        "turns": 3_000,
        "messages_per_turn": 2.0,
        "worker_cpu_ms_per_turn": 16.0,
    }


def test_without_turns_there_is_no_figure_per_turn() -> None:
    assert turn_figures(0, answered=0, workers_cpu_s=1.5) == {
        "turns": 0,
        "messages_per_turn": None,
        "worker_cpu_ms_per_turn": None,
    }
