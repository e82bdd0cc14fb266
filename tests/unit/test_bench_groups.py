"""The benchmark's worker groups: several `mcagent worker` supervisors as if on several hosts, their
figures, and the scaling comparison (bench/groups.py, bench/run.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.groups import (
    TURNS_NOT_COUNTED,
    Shape,
    group_split,
    roles_across_groups,
    scaling_comparison,
    scaling_shapes,
    service_names,
)
from bench.run import parse_args


def _labels(argv: list[str]) -> list[str]:
    return [shape.label for shape in parse_args(argv).shapes]


def test_one_worker_group_of_the_given_processes_and_threads_is_the_default() -> None:
    assert _labels([]) == ["1×(2×100)"]
    assert _labels(["--workers", "3", "--worker-threads", "50"]) == ["1×(3×50)"]


def test_workers_and_threads_apply_to_each_of_the_worker_groups() -> None:
    assert _labels(["--worker-groups", "2"]) == ["2×(2×100)"]
    assert _labels(["--worker-groups", "3", "--workers", "1"]) == ["3×(1×100)"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--worker-groups", "0"],
        ["--ingest-only", "--worker-groups", "2"],
        ["--ingest-only", "--scaling", "split"],
        ["--scaling", "split", "--worker-groups", "2"],
        ["--scaling", "split", "--config", "both"],
        ["--scaling", "double", "--channel-costs"],
        ["--scaling", "triple"],
    ],
)
def test_worker_group_options_that_cannot_be_run_are_refused_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_scaling_split_runs_one_group_then_two_sharing_its_processes() -> None:
    assert _labels(["--scaling", "split"]) == ["1×(2×100)", "2×(1×100)"]


def test_scaling_split_halves_the_threads_when_the_processes_do_not_halve() -> None:
    assert _labels(["--scaling", "split", "--workers", "1"]) == ["1×(1×100)", "2×(1×50)"]
    shapes = parse_args(["--scaling", "split", "--workers", "3", "--worker-threads", "64"]).shapes
    assert shapes[0].total_threads == shapes[1].total_threads == 192


def test_scaling_split_of_odd_processes_and_odd_threads_is_refused_rather_than_unequal() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        scaling_shapes("split", 3, 25)
    with pytest.raises(SystemExit):
        parse_args(["--scaling", "split", "--workers", "3", "--worker-threads", "25"])


def test_scaling_double_gives_the_second_group_as_many_threads_again_and_all_runs_the_three() -> None:
    assert _labels(["--scaling", "double"]) == ["1×(2×100)", "2×(2×100)"]
    assert _labels(["--scaling", "all"]) == ["1×(2×100)", "2×(1×100)", "2×(2×100)"]


def test_a_single_group_keeps_the_workers_name_and_several_are_numbered() -> None:
    assert service_names(1) == ["workers"]
    assert service_names(3) == ["workers-1", "workers-2", "workers-3"]
    assert Shape(2, 1, 100).slug == "2g-1x100"


def test_a_role_is_followed_in_every_group_and_left_out_when_one_group_lacks_it() -> None:
    per_group = [{"background": 13, "sweeper": 11}, {"sweeper": 21}, {"background": 33, "sweeper": 31}]
    assert roles_across_groups(per_group) == {"sweeper": [11, 21, 31]}
    assert roles_across_groups([{"background": 13, "sweeper": 11}]) == {"background": [13], "sweeper": [11]}
    assert roles_across_groups([]) == {}


def test_each_groups_cpu_is_reported_per_message_answered_and_as_its_share_of_the_workers() -> None:
    split = group_split(
        ["workers-1", "workers-2"],
        cpu_s=[12.0, 4.0],
        answered=2000,
        roles=[{"sweeper": 11}, {"sweeper": 21}],
        processes_at_end=[5, 5],
    )
    first, second = split["groups"]
    assert (first["cpu_s"], first["cpu_ms_per_message"], first["share_of_workers_cpu_pct"]) == (12.0, 6.0, 75.0)
    assert (second["cpu_s"], second["cpu_ms_per_message"], second["share_of_workers_cpu_pct"]) == (4.0, 2.0, 25.0)
    assert second["roles"] == {"sweeper": 21}
    assert split["turns"] == TURNS_NOT_COUNTED


def test_groups_that_spent_no_cpu_have_no_share_rather_than_a_division_by_zero() -> None:
    split = group_split(["workers"], cpu_s=[0.0], answered=0, roles=[{}], processes_at_end=[0])
    assert split["groups"][0]["share_of_workers_cpu_pct"] is None
    assert split["groups"][0]["cpu_ms_per_message"] == 0


def _run(shape: str, rate: float | None, cpu_ms: float, workers_ms: float = 10.0) -> dict[str, Any]:
    run: dict[str, Any] = {"worker_shape": shape}
    if rate is None:
        run["error"] = "RuntimeError('warm-up')"
        return run
    run["e2e"] = {"replies_per_s": rate}
    run["cpu"] = {"cpu_ms_per_message": cpu_ms, "service_cpu_ms_per_message": {"web": 3.0, "workers": workers_ms}}
    run["correctness"] = {"ordering_violations": 0, "duplicate_replies": 0, "lost_messages": 0}
    return run


def test_the_scaling_comparison_gives_each_shapes_throughput_and_cpu_and_their_ratio_to_one_group() -> None:
    comparison = scaling_comparison(
        [_run("1×(2×100)", 90.0, 14.0), _run("2×(1×100)", 81.0, 15.4, 12.0), _run("2×(2×100)", 99.0, 13.3)]
    )
    one, split, double = comparison["runs"]
    assert one == {
        "shape": "1×(2×100)",
        "replies_per_s": 90.0,
        "cpu_ms_per_message": 14.0,
        "workers_cpu_ms_per_message": 10.0,
        "ordering_dup_lost": [0, 0, 0],
    }
    assert (split["throughput_ratio_over_one_group"], split["cpu_ratio_over_one_group"]) == (0.9, 1.1)
    assert split["workers_cpu_ms_per_message"] == 12.0
    assert (double["throughput_ratio_over_one_group"], double["cpu_ratio_over_one_group"]) == (1.1, 0.95)


def test_a_failed_run_in_the_scaling_comparison_has_no_ratio_and_hides_none_of_the_others() -> None:
    comparison = scaling_comparison([_run("1×(2×100)", 90.0, 14.0), _run("2×(1×100)", None, 0.0)])
    failed = comparison["runs"][1]
    assert failed["shape"] == "2×(1×100)"
    assert failed["replies_per_s"] is None
    assert "throughput_ratio_over_one_group" not in failed
    comparison = scaling_comparison([_run("1×(2×100)", None, 0.0), _run("2×(1×100)", 81.0, 15.4)])
    assert "throughput_ratio_over_one_group" not in comparison["runs"][1]
