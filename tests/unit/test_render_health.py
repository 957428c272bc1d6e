"""The health view renders every state condition monitoring can produce, colours travels against the drift level and
the limit, shows people's text verbatim, and barrierctl health prints it (or the JSON, or a clear error)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from controller import cli
from controller.event_store import EventStore
from controller.exit_codes import ExitCode
from controller.render import plain
from controller.render_health import OVER_DRIFT, OVER_LIMIT, SPARK_TRAVELS, UNDER, UNTIMED, health_view, spark
from tests.unit.condition_rig import Feed
from tests.unit.test_render import HOSTILE


def render(table, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(table)
    return console.file.getvalue()


def styles(text) -> list[str]:
    """The style of each character of a rich Text."""
    out = [str(text.style)] * len(text.plain)
    for span in text.spans:
        for i in range(span.start, span.end):
            out[i] = str(span.style)
    return out


@pytest.fixture
def feed(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    yield Feed(store)
    store.close()


def of(health: dict, name: str) -> dict:
    return next(d for d in health["devices"] if d["name"] == name)


def test_before_any_travel_every_device_says_no_travels_and_no_baseline_and_an_unread_blocker_is_unknown(feed):
    feed.poll("gate-1")
    health = feed.monitor.health()
    out = render(health_view(health))
    assert f"condition of {len(health['devices'])} devices" in out
    assert out.count("no travels yet") == 2 * 4 + 3 * 2, "open and closed of 4 gates and booms, and EFO of 2 blockers"
    assert "no baseline yet" in out and "cycles 0" in out
    assert out.count("UNKNOWN") == 2 and "not read yet" in out, "no blocker was read: its readiness is not known"


def test_travels_are_drawn_against_the_drift_level_and_the_limit(feed):
    feed.poll("gate-1")
    for _ in range(20):  # the baseline: 2.40 s each way
        feed.cycle("gate-1", 2400, 2400)
    for _ in range(10):  # 2.80 s: over the drift warning level (2.64 s), under the limit (3.75 s)
        feed.cycle("gate-1", 2800, 2400)
    feed.travel("gate-1", "open", 4000)  # over the limit
    feed.travel("gate-1", "closed", 0)  # a travel the PLC did not time
    opening = of(feed.monitor.health(), "gate-1")["directions"]["open"]
    assert (opening["limit_ms"], round(opening["drift_warn_ms"])) == (3750, 2640)
    line = spark(opening["recent_ms"], opening["limit_ms"], opening["drift_warn_ms"])
    assert len(line.plain) == SPARK_TRAVELS
    assert styles(line) == [UNDER] * 9 + [OVER_DRIFT] * 10 + [OVER_LIMIT]
    assert line.plain[-1] == "█", "the slowest travel sets the top of the scale once it is over the limit"
    closing = of(feed.monitor.health(), "gate-1")["directions"]["closed"]
    untimed = spark(closing["recent_ms"], closing["limit_ms"], closing["drift_warn_ms"])
    assert untimed.plain[-1] == "·" and styles(untimed)[-1] == UNTIMED
    under = spark([2400], 3750, 2640)
    assert under.plain not in ("█", "▇"), "under the limit a bar does not reach the top: the limit is the scale"
    out = render(health_view(feed.monitor.health()))
    gate_rows = out[out.index("gate-1"):out.index("blocker-1")]
    assert "4.00 s" in gate_rows and "3.75 s" in gate_rows and "warn 2.64 s" in gate_rows and "2.40 s" in gate_rows
    assert "+17 %" in gate_rows, "median of the last 10 openings (2.80 s) against the baseline 2.40 s"
    assert "TRAVEL_DRIFT: travels to open" in gate_rows
    assert "cycles 62" in gate_rows
    narrow = render(health_view(feed.monitor.health()), width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80 and line.plain in narrow, "whole in 80 columns"


def test_readiness_ready_degraded_and_not_ready_show_a_badge_and_their_reasons(feed):
    feed.poll("blocker-1")
    assert " READY " in render(health_view({"devices": [of(feed.monitor.health(), "blocker-1")]}))
    feed.leaves["blocker-1"].analog_1 = 1300  # 130 bar: under nominal, over the minimum
    feed.poll("blocker-1")
    out = render(health_view({"devices": [of(feed.monitor.health(), "blocker-1")]}))
    assert " DEGRADED " in out and "accumulator at 130.0 bar, below nominal 140.0 bar" in out and "130.0 bar" in out
    feed.leaves["blocker-1"].analog_1 = 1600
    feed.travel("blocker-1", "closed", 3100, efo=True)
    out = render(health_view({"devices": [of(feed.monitor.health(), "blocker-1")]}))
    assert " NOT READY " in out and "took 3.10 s, over the 2.50 s limit" in out
    assert "EFO raise" in out and "2.50 s" in out


def test_a_service_due_and_the_last_service_are_shown_with_the_technicians_words(feed):
    feed.poll("bay-exit")
    feed.monitor.of("bay-exit").record_service("tech", "boom arm greased [/] ✓")
    feed.leaves["bay-exit"].cycle_count = 500_001
    feed.poll("bay-exit")
    out = render(health_view({"devices": [of(feed.monitor.health(), "bay-exit")]}))
    assert "SERVICE DUE" in out and "500001 of 500000 since service" in out
    assert "by tech: boom arm greased [/] ✓" in out


TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
NUMBER = st.one_of(st.none(), st.integers(-10, 10**15), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
TIMING = st.one_of(st.none(), st.fixed_dictionaries({
    "baseline": NUMBER, "baseline_samples": NUMBER, "baseline_of": NUMBER, "recent_median": NUMBER, "drift": NUMBER}))
DIRECTION = st.fixed_dictionaries({
    "recent_ms": st.lists(st.one_of(st.integers(0, 10**12), st.floats(0, 1e12)), max_size=30),
    "recent_ids": st.lists(st.integers(0, 2**63), max_size=30), "limit_ms": NUMBER, "drift_warn_ms": NUMBER,
    "timing": TIMING, "analog_1": TIMING})
READINESS = st.one_of(st.none(), st.fixed_dictionaries({
    "state": st.one_of(st.sampled_from(["ready", "degraded", "not_ready", "unknown"]), TEXT),
    "reasons": st.lists(TEXT, max_size=4), "pressure_bar": NUMBER, "oil_c": NUMBER, "decay_bar_per_min": NUMBER}))
MARK = st.one_of(st.none(), st.fixed_dictionaries({"ts": NUMBER, "by": TEXT, "reason": TEXT, "cycle_count": NUMBER}))
DEVICE = st.fixed_dictionaries({
    "name": st.text(min_size=1, max_size=12),
    "kind": st.one_of(st.sampled_from(["folding_gate", "road_blocker", "spike_strip", "boom_barrier"]), TEXT),
    "cycles": NUMBER, "cycles_since_service": NUMBER, "service_cycles": NUMBER, "service_due": st.booleans(),
    "readiness": READINESS, "drift": st.lists(TEXT, max_size=3), "analog_1_unit": TEXT,
    "directions": st.one_of(st.fixed_dictionaries({"open": DIRECTION, "closed": DIRECTION, "efo": DIRECTION}),
                            st.just({})),
    "last_service": MARK, "baseline_reset": MARK, "conditions": st.dictionaries(TEXT, TEXT, max_size=3)},
    optional={"extra": TEXT})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DEVICE, max_size=4))
def test_any_health_reply_renders_with_every_device_and_its_readiness(devices):
    out = render(health_view({"devices": devices}), width=400)
    assert f"condition of {len(devices)} device" in out
    unwrapped = "".join(out.split())  # a long (escaped) name wraps at the table's width
    for device in devices:
        shown = plain(device["name"]).split()
        assert not shown or shown[0] in unwrapped
        readiness = device["readiness"]
        if readiness is not None and readiness["state"] == "not_ready":
            assert "NOT READY" in out
    if not devices:
        assert "no device travels between limits" in out


@pytest.mark.parametrize("reply", [{}, {"devices": None}, {"devices": ["x", 3, None]}, None, []])
def test_a_reply_without_devices_renders_as_none(reply):
    assert "no device travels between limits" in render(health_view(reply))


def fake_daemon(monkeypatch, replies: dict) -> list:
    asked = []

    def request(_path, command, args=None, timeout_s=30.0):
        asked.append((command, args))
        return replies[args.get("device") if args else None]
    monkeypatch.setattr(cli, "request", request)
    return asked


def test_barrierctl_health_draws_the_table_and_json_keeps_the_reply(feed, monkeypatch, capsys):
    feed.poll("gate-1")
    feed.cycle("gate-1", 2400, 2300)
    one = {"devices": [of(feed.monitor.health(), "gate-1")]}
    asked = fake_daemon(monkeypatch, {"gate-1": {"exit": 0, "outcome": "done", "message": "ok", "data": one},
                                      None: {"exit": 0, "outcome": "done", "message": "ok",
                                             "data": feed.monitor.health()}})
    assert cli.main(["--socket", "/nowhere", "health", "gate-1"]) == ExitCode.DONE
    out = capsys.readouterr().out
    assert "condition of 1 device" in out and "gate-1" in out and "2.40 s" in out and "2.30 s" in out
    assert cli.main(["--socket", "/nowhere", "health", "gate-1", "--json"]) == ExitCode.DONE
    assert json.loads(capsys.readouterr().out) == one
    assert cli.main(["--socket", "/nowhere", "health"]) == ExitCode.DONE
    assert "blocker-2" in capsys.readouterr().out
    assert asked == [("health", {"device": "gate-1"})] * 2 + [("health", {})]


def test_barrierctl_health_of_an_unknown_device_says_so_and_exits_like_other_commands(monkeypatch, capsys):
    fake_daemon(monkeypatch, {"gate-9": {"exit": 2, "outcome": "usage", "data": None,
                                         "message": "no device named 'gate-9'; did you mean 'gate-1'?"}})
    assert cli.main(["--socket", "/nowhere", "health", "gate-9"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert "no device named 'gate-9'" in captured.err and captured.out == ""
