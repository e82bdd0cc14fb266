"""How the benchmark reads the machine itself: busy and stolen CPU, and how fast the CPU was."""

from __future__ import annotations

import time

import pytest

from bench import procstats


def test_the_cpu_line_gives_busy_total_and_stolen_ticks() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy, total, stolen = procstats.cpu_ticks("cpu  100 0 50 800 10 0 5 20 0 0")

    assert (busy, total, stolen) == (175, 985, 20)


def test_a_kernel_without_steal_reads_none_stolen() -> None:
    assert procstats.cpu_ticks("cpu  100 0 50 800 10 0 5") == (155, 965, 0)


def test_the_speed_probe_counts_cpu_not_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procstats, "_probe_work", lambda: time.sleep(0.05))

    assert procstats.speed_probe_ms(rounds=2) < 10


def test_the_speed_probe_reports_the_fastest_round(monkeypatch: pytest.MonkeyPatch) -> None:
    spins = iter([0.06, 0.02, 0.06])

    def spin() -> None:
        until = time.process_time() + next(spins)
        while time.process_time() < until:
            pass

    monkeypatch.setattr(procstats, "_probe_work", spin)

    assert 15 <= procstats.speed_probe_ms(rounds=3) < 50


def test_the_real_probe_does_measurable_work() -> None:
    assert procstats.speed_probe_ms(rounds=1) > 1
