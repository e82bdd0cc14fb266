"""Faults as figures: the whole system under load, broken on purpose, with the counts that say what it cost.

`python -m bench.faults` (`tox -e faults`) runs every scenario of `scenarios.py` one after the other: `rig.py`
starts the system for each and drives it, `upstreams.py` holds the stand-ins that fail on cue, `proxy.py` adds
network delay, `postgres.py` keeps a PostgreSQL the harness may restart, `figures.py` counts. bench/README.md,
"Faults", says what each figure means.
"""
