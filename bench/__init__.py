"""Benchmarks of the supervisor: `python -m bench` (or `make bench`) runs every benchmark in
bench.runner.BENCHMARKS and writes bench/report.md and bench/report.json.

To add one: write a module with a function `(seconds: float) -> list[dict]` that returns one row
per measurement (the same keys in every row), and add a Benchmark for it to BENCHMARKS.
"""
