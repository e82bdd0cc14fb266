"""How the benchmark reads the machine itself: busy and stolen CPU, and how fast the CPU was."""

from __future__ import annotations

import os
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


def test_the_wakeup_probe_compares_the_same_work_after_a_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        until = time.process_time() + 0.0002
        while time.process_time() < until:
            pass

    monkeypatch.setattr(procstats, "_request_like_work", work)

    probe = procstats.wakeup_probe(calls=5, pause_s=0.001)

    assert len(calls) == 12  # a first call, untimed, then five timed, for each of the two ways
    assert probe["back_to_back_us"] >= 150
    assert probe["after_sleep_us"] >= 150
    assert probe["ratio"] == round(probe["after_sleep_us"] / probe["back_to_back_us"], 2)


def test_the_wakeup_probe_counts_cpu_not_the_sleep() -> None:
    probe = procstats.wakeup_probe(calls=5, pause_s=0.02)

    assert 10 < probe["back_to_back_us"] < 20_000
    assert probe["after_sleep_us"] < 20_000  # the 20 ms asleep are not in it


def test_a_thread_that_sleeps_switches_voluntarily_once_per_sleep() -> None:
    before = procstats.context_switches(os.getpid())
    for _ in range(20):
        time.sleep(0.001)
    voluntary, _ = procstats.switches_between(before, procstats.context_switches(os.getpid()))

    assert voluntary >= 20


def test_switches_of_threads_born_meanwhile_count_from_zero_and_of_ended_ones_are_missed() -> None:
    before = {1: (10, 1), 2: (5, 0)}
    after = {1: (15, 3), 3: (4, 2)}  # thread 2 ended, thread 3 began

    assert procstats.switches_between(before, after) == (5 + 4, 2 + 2)


def test_a_process_gone_has_no_threads_to_count() -> None:
    assert procstats.context_switches(2**22 + 1) == {}


def test_a_group_tells_the_kernels_part_of_its_cpu() -> None:
    group = procstats.Group("web")
    group.observe([_stat(own=100, children=20, system=30)], with_pss=False)
    group.mark_baseline()
    group.observe([_stat(own=180, children=20, system=50)], with_pss=False)

    assert group.cpu_s() == pytest.approx(80 / procstats.CLK_TCK)
    assert group.system_s() == pytest.approx(20 / procstats.CLK_TCK)
    assert group.pids == (7,)


def test_this_process_reads_its_kernel_time_within_its_cpu() -> None:
    stat = procstats.read_stat(os.getpid())

    assert stat is not None
    assert 0 <= stat.system_ticks <= stat.own_ticks + stat.children_ticks


def _stat(*, own: int, children: int, system: int) -> procstats.ProcStat:
    return procstats.ProcStat(
        pid=7, comm="python", ppid=1, own_ticks=own, children_ticks=children, start=1, rss_bytes=0, system_ticks=system
    )
