from __future__ import annotations

from entrypoints.worker.scaling import ScalingPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _policy(clock: Clock) -> ScalingPolicy:
    return ScalingPolicy(minimum=1, maximum=6, threads_per_process=10, grow_after_s=2, shrink_after_s=30, clock=clock)


def test_jobs_waiting_longer_than_the_threshold_add_enough_processes_for_them() -> None:
    policy = _policy(Clock())
    assert policy.decide(1, depth=25, oldest_age_s=3.0) == 4


def test_young_waiting_jobs_do_not_grow_the_pool() -> None:
    policy = _policy(Clock())
    assert policy.decide(2, depth=25, oldest_age_s=0.5) == 2


def test_growth_stops_at_the_maximum() -> None:
    policy = _policy(Clock())
    assert policy.decide(5, depth=500, oldest_age_s=10.0) == 6


def test_an_empty_queue_shrinks_the_pool_one_step_per_quiet_period_down_to_the_minimum() -> None:
    clock = Clock()
    policy = _policy(clock)
    assert policy.decide(3, depth=0, oldest_age_s=None) == 3
    clock.now = 29
    assert policy.decide(3, depth=0, oldest_age_s=None) == 3
    clock.now = 30
    assert policy.decide(3, depth=0, oldest_age_s=None) == 2
    clock.now = 45
    assert policy.decide(2, depth=0, oldest_age_s=None) == 2
    clock.now = 60
    assert policy.decide(2, depth=0, oldest_age_s=None) == 1
    clock.now = 200
    assert policy.decide(1, depth=0, oldest_age_s=None) == 1


def test_work_arriving_resets_the_quiet_period() -> None:
    clock = Clock()
    policy = _policy(clock)
    policy.decide(3, depth=0, oldest_age_s=None)
    clock.now = 25
    policy.decide(3, depth=1, oldest_age_s=0.1)
    clock.now = 40
    assert policy.decide(3, depth=0, oldest_age_s=None) == 3
