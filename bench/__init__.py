"""The benchmark: `python -m bench.run` starts the real system, drives it, and prints one JSON report."""
