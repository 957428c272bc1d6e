"""The benchmark code path at a tiny size (1 s at 115200 baud), so `make bench` does not rot: report structure only."""

from __future__ import annotations

import json

import pytest

from bench.rtu_poll import rtu_poll_rate
from bench.runner import BENCHMARKS, Benchmark, run, write_reports

pytestmark = pytest.mark.timeout(60)


def test_rtu_poll_benchmark_runs_and_writes_both_reports(tmp_path):
    tiny = Benchmark("rtu_poll_rate", "RTU polls", lambda seconds: rtu_poll_rate(seconds, bauds=(115200,)))
    md, js = write_reports(run([tiny], 1.0), tmp_path)
    report = json.loads(js.read_text())
    assert set(report) == {"date", "machine", "seconds_per_row", "benchmarks"}
    assert report["machine"]["cpu_count"] and report["machine"]["platform"]
    (bench,) = report["benchmarks"]
    (row,) = bench["rows"]
    assert row["baud"] == 115200 and row["registers"] == 28
    assert (row["request_bytes"], row["reply_bytes"]) == (8, 61)
    assert row["theoretical_cycle_ms"] == pytest.approx(9.49, abs=0.01)
    assert row["polls"] > 0 and row["polls_per_s"] > 0
    assert row["pct_of_theoretical"] == pytest.approx(100 * row["polls_per_s"] / row["theoretical_polls_per_s"], abs=0.2)
    text = md.read_text()
    assert "| baud |" in text and "| 115200 |" in text


def test_every_registered_benchmark_has_a_unique_name_a_title_and_a_function():
    names = [b.name for b in BENCHMARKS]
    assert "rtu_poll_rate" in names and len(set(names)) == len(names)
    assert all(b.title and callable(b.measure) for b in BENCHMARKS)
