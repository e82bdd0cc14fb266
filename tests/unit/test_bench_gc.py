"""`python -m bench.run --gc-pauses`: the probe a service process loads, the figures read from its log; and the
report's summary of a service log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.gcstats import gc_pause_figures, probe_env
from bench.run import log_summary


def test_a_process_started_with_the_probe_logs_its_full_collections(tmp_path: Path) -> None:
    log = tmp_path / "gc.log"
    env = {**os.environ, **probe_env(log, os.getcwd())}

    subprocess.run([sys.executable, "-c", "import gc; gc.collect(); gc.collect()"], env=env, check=True)

    full = [line.split() for line in log.read_text().splitlines() if line.split()[2] == "2"]
    assert len(full) >= 2
    assert all(float(fields[3]) >= 0 and int(fields[1]) > 0 for fields in full)


def test_only_collections_that_began_in_the_drive_count(tmp_path: Path) -> None:
    log = tmp_path / "gc.log"
    log.write_text(
        "\n".join(
            [
                "100.000 7 total 10 40.0",  # before the drive: the baseline of process 7
                "100.500 7 2 300.00 5",  # a full collection that ended in the drive but began before it
                "105.000 7 2 120.00 0",
                "106.000 7 0 6.00 0",
                "107.000 7 1 2.00 0",  # a short collection of a young generation: not logged by the probe, ignored
                "110.000 7 total 90 210.0",
                "120.000 8 total 5 30.0",  # process 8 began in the drive: all of its time counts
                "131.000 7 2 80.00 0",  # after the drive
                "",
            ]
        )
    )

    figures = gc_pause_figures(log, start_at=101.0, drive_end=130.0, answered=1000)

    assert figures["full_collections"] == 1
    assert figures["collections_of_5_ms_or_more"] == 2
    assert figures["longest_ms"] == 120.0
    assert figures["collector_ms_in_drive"] == 170.0 + 30.0
    assert figures["collector_ms_per_message"] == 0.2


def test_a_run_without_the_probe_says_so(tmp_path: Path) -> None:
    assert "error" in gc_pause_figures(tmp_path / "gc.log", 0.0, 1.0, 10)


def test_a_log_line_that_is_json_but_not_a_record_counts_as_text(tmp_path: Path) -> None:
    """Stack dumps of processes killed at once interleave; a fragment like `"run` + `"` parses as a JSON string."""
    log = tmp_path / "workers.log"
    log.write_text('{"level": "warning", "event": "turn_failed"}\n"run"\n1928\n\n  File "x.py", line 3\n')

    summary = log_summary(log)

    assert summary["lines"] == 3
    assert ["warning: turn_failed", 1] in summary["top"]
    assert ['text: "run"', 1] in summary["top"]
