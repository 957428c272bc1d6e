"""Every benchmark's code path at a tiny size (2 PLCs, a few iterations), so `make bench` does not rot.

Only the shape of the rows is checked (keys, counts, positive figures); no timing is asserted.
"""

from __future__ import annotations

import json
import math

import pytest

from bench import (audit_store, centre_lockdown, comms_loss, fleet_centre, floor, latency, lockdown_fanout,
                   panel_jitter, panel_push, scale, startup_rss)
from bench.procs import percentile
from bench.runner import BENCHMARKS, Benchmark, run, write_reports
from bench.sites import lanes_site, slots_site

pytestmark = pytest.mark.timeout(90)


def positive(*values: float) -> bool:
    return all(isinstance(v, int | float) and v > 0 and math.isfinite(v) for v in values)


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 5], 99) == pytest.approx(4.96)
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


def test_generated_sites_load_with_the_real_schema(tmp_path):
    from config.loader import load_site

    lanes = tmp_path / "lanes.toml"
    lanes.write_text(lanes_site(2))
    cfg = load_site(lanes)
    assert [p.name for p in cfg.plc] == ["plc-1", "plc-2"] and len(cfg.device) == 6 and len(cfg.lane) == 2
    scaled = tmp_path / "scale.toml"
    scaled.write_text(slots_site(3, 4, poll_ms=20))
    cfg = load_site(scaled)
    assert len(cfg.plc) == 3 and cfg.site.poll_ms == 20 and len({p.port for p in cfg.plc}) == 3
    assert cfg.slot_kinds("plc-1") == cfg.slot_kinds("plc-3") and len(cfg.slot_kinds("plc-1")) == 4


def test_floor_and_command_latency(tmp_path):
    (row,) = floor.floor(0.1)
    assert row["requests"] >= 500 and positive(row["p50_us"], row["p99_us"], row["max_us"])
    assert row["p50_us"] <= row["p99_us"] <= row["max_us"]
    rows = latency.command_latency(0, commands=4)
    assert [r["path"].split(" ")[:2] for r in rows] == [["barrierd:", "control"], ["barrierd:", "open"],
                                                          ["barrierd:", "close"], ["pymodbus", "client"]]
    assert [r["commands"] for r in rows] == [4, 2, 2, 4]
    for r in rows:
        assert r["writes_matched"] == r["commands"] and r["not_done"] == 0
        assert positive(r["p50_ms"], r["p99_ms"], r["max_ms"], r["floor_p99_ms"], r["p99_over_floor_p99"])
    assert isinstance(rows[0]["meets_target"], bool) and positive(rows[0]["target_p99_ms"], rows[0]["reply_p50_ms"])


def test_event_latency():
    (row,) = latency.event_latency(0, polls_ms=(20,), changes=4)
    assert row["poll_ms"] == 20 and row["changes"] == 4 and row["target_p99_ms"] == 25
    assert positive(row["p50_ms"], row["p99_ms"], row["max_ms"], row["status_rtt_p50_ms"])
    assert isinstance(row["meets_target"], bool)


def test_lockdown_fanout():
    (row,) = lockdown_fanout.lockdown_fanout(0, lanes=2, secured_trials=2, from_open=False)
    assert row["start"] == "every device secured" and row["lanes_plcs"] == 2 and row["devices"] == 6
    assert row["trials"] == 2
    assert positive(row["first_write_ms_p50"], row["last_write_ms_p50"], row["last_write_ms_max"],
                    row["all_secured_s_max"], row["reply_s_max"])
    assert row["first_write_ms_p50"] <= row["last_write_ms_max"]


def test_scale_measures_barrierd_the_bare_loop_and_the_hand_written_one():
    rows = scale.scale(1.0, sizes=(2,), warmup_s=0.3)
    assert [r["process"] for r in rows] == ["barrierd", "bare loop", "hand loop (uvloop)"]
    for r in rows:
        assert r["plcs"] == 2 and r["slots"] == 4 and r["sim_processes"] == 1
        assert positive(r["poll_hz_min"], r["poll_hz_median"], r["peak_rss_mb"])
        # CPU counts in clock ticks (10 ms): a 1 s window of 2 PLCs may show none for the bare loop
        assert r["cpu_s_per_s"] >= 0 and r["sim_cpu_s_per_s_total"] >= 0
        assert r["cpu_vs_first_size"] in (1.0, None)
    assert rows[1]["cpu_vs_bare"] in (1.0, None) and rows[2]["cpu_vs_hand"] in (1.0, None)
    assert all(r["poll_hz_min"] > 5 for r in rows)  # each reference really polled every PLC
    assert isinstance(rows[0]["targets_missed"], str)


def test_startup_rss_follows_barrierds_imports_then_the_running_daemon():
    rows = startup_rss.startup_rss(0.2, plcs=2)
    assert [r["stage"] for r in rows] == [stage for stage, _ in startup_rss.STAGES] + [
        "barrierd, every one of 2 PLCs read", "barrierd after 0.2 s more", "barrierd's peak (VmHWM)"]
    imports = rows[:len(startup_rss.STAGES)]
    assert all(positive(r["rss_mib"]) for r in rows)
    assert [r["modules"] for r in imports] == sorted(r["modules"] for r in imports)  # each stage imports more
    assert imports[-1]["heavy_loaded"] == "none"
    assert rows[-1]["rss_mib"] >= rows[-2]["rss_mib"]  # the peak is at least the current figure


def test_comms_loss():
    (row,) = comms_loss.comms_loss(0, configs=((20, 50),), trials=1)
    assert (row["poll_ms"], row["timeout_ms"], row["trials"], row["reference_ms"]) == (20, 50, 1, 210)
    assert positive(row["unknown_ms_p50"], row["lost_ms_p50"], row["lost_ms_max"], row["recovered_s_max"])
    assert row["unknown_ms_p50"] <= row["lost_ms_p50"]


def test_audit_store_writes(tmp_path):
    rows = audit_store.audit_store_writes(0, calls=5, directory=tmp_path)
    assert [r["call"] for r in rows] == ["record_event", "record_request", "record_command", "audit head flush"]
    assert [r["durable"] for r in rows] == ["no", "fsync", "fsync", "fsync"]
    for r in rows:
        assert r["calls"] == 5 and positive(r["p50_ms"], r["p99_ms"], r["max_ms"])
        assert r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert list(tmp_path.iterdir()) == [], "the temporary store is removed"

def test_panel_push_in_chromium_and_its_reference_client():
    rows = panel_push.panel_push(0, changes=3)
    assert [r["path"].split(" ")[0] for r in rows] == ["headless", "aiohttp"]
    for r in rows:
        assert r["changes"] >= 3 and r["not_shown"] == 0 and positive(r["p50_ms"], r["p95_ms"], r["max_ms"])
        assert r["p50_ms"] <= r["p95_ms"] <= r["max_ms"] and isinstance(r["meets_target"], bool)
    assert positive(rows[0]["next_frame_p50_ms"]) and "±" in rows[0]["clock_check_ms"]
    assert not [line for line in open("/etc/passwd") if line.startswith("pnlbench")], "the run's user is removed"


def test_panel_jitter_without_and_with_pages():
    rows = panel_jitter.panel_jitter(1.0, readers=2, slow_pages=1, lanes=1, warmup_s=0.3)
    assert [(r["pages"], r["slow_pages"], r["flooding_pages"], r["pages_nice"]) for r in rows] == [
        (0, 0, 0, "-"), (2, 1, 1, 19), (2, 1, 1, 0)]
    for r in rows:
        assert r["intervals"] >= 3 and r["capture_drops"] == 0 and r["state_switches"] > 0
        assert positive(r["interval_p50_ms"], r["interval_max_ms"]) and r["deviation_max_ms"] >= 0
    for r in rows[1:]:
        assert r["messages_read"] > 0 and r["flood_frames"] > 0 and r["slow_send_queue_kb"] >= 0


def test_fleet_centre_follows_the_fleet_with_the_web_page_and_the_terminal_view():
    rows = fleet_centre.fleet_centre(1.0, sites=2, lanes=1, status_runs=1, refresh_s=1.0)
    assert [r["subscriber"].split(" ")[0:2] for r in rows] == [["aiomqtt", "(reference)"], ["barrier-centre", "web"],
                                                               ["barrier-centre", "watch"]]
    assert len({tuple(r) for r in rows}) == 1, "every row has the same columns"
    for r in rows:
        assert r["sites × lanes"] == "2 × 1" and positive(r["msgs_in/s"], r["msgs_out/s"], r["subscriber_peak_mb"])
        assert r["subscriber_cpu"] >= 0
    web, watch = rows[1], rows[2]
    # the centre understood what the simulated sites publish: both online, all 6 devices current
    assert web["sites_online"] == 2 and web["devices_current"] == "6/6" and positive(web["received/s"],
                                                                                 web["picture_kb"])
    assert web["status_sites"] == "2 (2 online, 6/6)" and positive(*map(float, web["status_json_s"].split(" / ")))
    assert positive(web["view_updates/s"], watch["view_updates/s"])
    assert watch["status_json_s"] == "-" and rows[0]["view_updates/s"] == "-"


@pytest.mark.timeout(180)
def test_centre_lockdown_secures_three_crossings_per_run_with_p50_and_max():
    rows = centre_lockdown.centre_lockdown(0, runs=2, open_runs=0)
    assert [(r["start"], r["run"]) for r in rows] == [("every device secured", run) for run in ("1", "2", "p50", "max")]
    for r in rows:
        secured = [float(v) for v in r["secured_s (north / south / east)"].split(" / ")]
        delivery = [float(v) for v in r["delivery_ms (north / south / east)"].split(" / ")]
        assert len(secured) == len(delivery) == 3 and positive(*secured, *delivery, r["wall_s"])
    for r in rows[:2]:  # a run's all_secured_s is its slowest site
        assert r["all_secured_s"] == max(float(v) for v in r["secured_s (north / south / east)"].split(" / "))
    assert rows[3]["all_secured_s"] == max(rows[0]["all_secured_s"], rows[1]["all_secured_s"])
    assert rows[3]["wall_s"] == max(rows[0]["wall_s"], rows[1]["wall_s"])


def test_every_benchmark_is_registered_and_reports_render(tmp_path):
    names = [b.name for b in BENCHMARKS]
    assert names == ["rtu_poll_rate", "floor", "command_latency", "event_latency", "lockdown_fanout", "scale",
                     "startup_rss", "comms_loss", "audit_store_writes", "panel_push", "panel_jitter", "fleet_broker", "fleet_centre",
                     "centre_lockdown"]
    assert all(b.title and b.notes and callable(b.measure) for b in BENCHMARKS)
    tiny = Benchmark("floor", "floor", lambda seconds: floor.floor(seconds))
    md, js = write_reports(run([tiny], 0.1), tmp_path)
    report = json.loads(js.read_text())
    assert report["benchmarks"][0]["rows"][0]["requests"] >= 500
    assert "| exchange | requests | p50_us |" in md.read_text()
