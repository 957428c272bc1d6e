"""config.load_site: every bundled site loads; every broken site is refused naming file and key.

Broken sites are built from the demo site (config/sites/demo.toml): parse it, mutate one
thing, write it back with the small TOML writer below, and check that ConfigError names
the file and the exact offending key.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, SiteConfig
from config.loader import load_site
from tests.unit.broken_sites import BROKEN, BUS, _all, _append, _to_bus

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "config"
DEMO = CONFIG_DIR / "sites" / "demo.toml"
SITE_FILES = sorted(CONFIG_DIR.rglob("*.toml"))

# demo.toml entries by index, as the keys in messages refer to them
# plc:    0 plc-lane-1, 1 plc-lane-2, 2 plc-bay
# device: 0 gate-1, 1 blocker-1, 2 signal-1, 3 gate-2, 4 blocker-2, 5 signal-2, 6 bay-entry, 7 bay-exit
# lane:   0 lane-1, 1 lane-2


# ---------------------------------------------------------------------------
# A tiny TOML writer (enough for site files: scalars, arrays of scalars, tables,
# arrays of tables)
# ---------------------------------------------------------------------------

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dump_toml(data: dict[str, Any]) -> str:
    """Top-level scalars first, then [tables] and [[arrays of tables]] (one level deep)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_array(value):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        for entry, header in ([(value, f"[{_key(key)}]")] if isinstance(value, dict) else
                              [(v, f"[[{_key(key)}]]") for v in value]):
            lines += ["", header]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def demo_raw() -> dict[str, Any]:
    """A fresh, mutable parse of the demo site."""
    return tomllib.loads(DEMO.read_text(encoding="utf-8"))


def write_site(tmp_path: Path, raw: dict[str, Any], name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(dump_toml(raw), encoding="utf-8")
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_site(path)
    return info.value


def assert_names(err: ConfigError, path: Path, key: str, reason: str = "") -> None:
    """The error names the file and `key`, as a problem and as a line of its message."""
    message = str(err)
    assert err.path == str(path)
    assert str(path) in message
    keys = [k for k, _ in err.problems]
    assert key in keys, f"{key!r} not among problem keys {keys}"
    matching = [why for k, why in err.problems if k == key]
    assert any(reason.lower() in why.lower() for why in matching), (key, reason, matching)
    line = next(line for line in message.splitlines() if line.startswith(f"{path}: {key}: "))
    assert reason.lower() in line.lower()


# ---------------------------------------------------------------------------
# The writer itself
# ---------------------------------------------------------------------------


def test_writer_round_trips_the_demo(tmp_path):
    raw = demo_raw()
    text = dump_toml(raw)
    assert tomllib.loads(text) == raw
    assert load_site(write_site(tmp_path, raw)) == load_site(DEMO)


# ---------------------------------------------------------------------------
# Every bundled site loads
# ---------------------------------------------------------------------------


def test_bundled_sites_are_found():
    assert DEMO in SITE_FILES


@pytest.mark.parametrize("path", SITE_FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in SITE_FILES])
def test_every_bundled_site_loads(path):
    site = load_site(path)
    assert isinstance(site, SiteConfig)
    assert len(site.plc) >= 1
    assert len(site.device) >= 1
    for plc in site.plc:
        devices = site.devices_of(plc.name)
        assert [d.slot for d in devices] == list(range(len(devices)))
        assert len(site.slot_kinds(plc.name)) == len(devices)


def test_demo_site_contents():
    site = load_site(DEMO)
    assert site.site.name == "demo-crossing"
    assert [p.name for p in site.plc] == ["plc-lane-1", "plc-lane-2", "plc-bay"]
    assert [int(k) for k in site.slot_kinds("plc-lane-1")] == [1, 2, 4]
    assert [int(k) for k in site.slot_kinds("plc-bay")] == [3, 3]
    assert [lane.name for lane in site.lane] == ["lane-1", "lane-2"]
    assert site.interlock[0].devices == ["bay-entry", "bay-exit"]


def test_the_demo_condition_section_loads_and_a_device_interval_wins_over_its_kinds(tmp_path):
    site = load_site(DEMO)
    assert (site.condition.efo_limit_s, site.condition.baseline_travels, site.condition.refuse_open_in_cold) == (
        2.5, 20, False)
    assert site.service_cycles(site.device[1]) == 100000  # blocker-1: its kind's interval
    raw = demo_raw()
    raw["device"][1]["service_cycles"] = 5000
    raw["condition"]["refuse_open_in_cold"] = True
    site = load_site(write_site(tmp_path, raw))
    assert site.service_cycles(site.device[1]) == 5000 and site.condition.refuse_open_in_cold
    del raw["condition"]
    assert load_site(write_site(tmp_path, raw, "bare.toml")).condition.efo_limit_s == 2.5  # the section is optional


def test_load_site_accepts_str_path():
    assert load_site(str(DEMO)) == load_site(DEMO)


def test_an_mqtt_section_loads(tmp_path):
    raw = demo_raw()
    raw["mqtt"] = {"host": "broker.site.example", "port": 8883, "topic_prefix": "crossings/north",
                   "username": "crossing-north", "password_file": "/etc/barrierd/mqtt-password",
                   "tls_ca_file": "/etc/barrierd/broker-ca.pem"}
    site = load_site(write_site(tmp_path, raw, "mqtt.toml"))
    assert site.mqtt is not None and site.mqtt.topic_prefix == "crossings/north" and site.mqtt.qos == 1


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_site_is_refused_naming_file_and_key(tmp_path, case):
    mutate, expected = BROKEN[case]
    raw = demo_raw()
    mutate(raw)
    path = write_site(tmp_path, raw, f"{case}.toml")
    err = refused(path)
    for key, reason in expected.items():
        assert_names(err, path, key, reason)
    assert {k for k, _ in err.problems} == set(expected), f"unexpected extra problems: {err.problems}"


def test_rtu_variant_of_the_demo_loads(tmp_path):
    """Control for the bus cases above: a correct bus set-up is accepted."""
    raw = demo_raw()
    _all(_append("bus", dict(BUS)), _to_bus(1, "rs485-1", unit=1), _to_bus(2, "rs485-1", unit=2))(raw)
    site = load_site(write_site(tmp_path, raw))
    assert site.plc_named("plc-bay").bus == "rs485-1"
    assert site.plc_named("plc-lane-2").host is None


def test_watchdog_zero_means_off_and_is_accepted(tmp_path):
    raw = demo_raw()
    raw["plc"][0]["watchdog_ms"] = 0
    assert load_site(write_site(tmp_path, raw)).plc[0].watchdog_ms == 0


def test_every_problem_is_reported_at_once(tmp_path):
    raw = demo_raw()
    raw["site"]["poll_ms"] = 0
    raw["device"][0]["colour"] = "red"
    raw["plc"][2]["port"] = 70000
    path = write_site(tmp_path, raw)
    err = refused(path)
    assert {k for k, _ in err.problems} == {
        "site.poll_ms",
        'device[0] ("gate-1").colour',
        'plc[2] ("plc-bay").port',
    }
    assert len(str(err).splitlines()) == 3


def test_problems_is_a_list_of_key_reason_pairs(tmp_path):
    raw = demo_raw()
    raw["device"][0]["colour"] = "red"
    raw["device"][1]["slot"] = 16
    err = refused(write_site(tmp_path, raw))
    assert isinstance(err.problems, list) and len(err.problems) == 2
    for problem in err.problems:
        assert isinstance(problem, tuple) and len(problem) == 2
        key, reason = problem
        assert isinstance(key, str) and key
        assert isinstance(reason, str) and reason
    assert isinstance(err, Exception)


# ---------------------------------------------------------------------------
# Files that are not valid TOML at all
# ---------------------------------------------------------------------------

SYNTAX_ERRORS = {
    "unterminated-string": 'name = "demo-crossing\n',
    "missing-value": "poll_ms =\n",
    "duplicate-key": "poll_ms = 100\npoll_ms = 200\n",
    "bad-table-header": "[[device]\nname = 'x'\n",
}


@pytest.mark.parametrize("case", sorted(SYNTAX_ERRORS))
def test_toml_syntax_error_is_refused(tmp_path, case):
    text = DEMO.read_text(encoding="utf-8").replace("[site]\n", "[site]\n" + SYNTAX_ERRORS[case], 1)
    path = tmp_path / f"{case}.toml"
    path.write_text(text, encoding="utf-8")
    err = refused(path)
    assert_names(err, path, "(syntax)", "line")
    assert err.problems[0][0] == "(syntax)"
    assert len(err.problems) == 1


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "nowhere" / "site.toml"
    err = refused(path)
    assert_names(err, path, "(file)", "cannot read")
    assert "no such file" in str(err).lower()


def test_directory_is_refused(tmp_path):
    err = refused(tmp_path)
    assert_names(err, tmp_path, "(file)", "cannot read")


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(DEMO.read_text(encoding="utf-8").replace("demo-crossing", "d\u00e9mo").encode("latin-1"))
    err = refused(path)
    assert_names(err, path, "(file)", "utf-8")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    err = refused(path)
    assert {k for k, _ in err.problems} == {"site", "plc", "device"}
    for key in ("site", "plc", "device"):
        assert_names(err, path, key, "field required")


def test_a_marker_written_where_pydantic_would_ignore_it_is_refused_when_the_schema_is_built():
    from typing import Annotated

    from pydantic import TypeAdapter

    from config.checks import FromArray, Pattern

    assert TypeAdapter(Annotated[str, Pattern("^a$")] | None).validate_python(None) is None
    with pytest.raises(TypeError, match="applies to a str"):
        TypeAdapter(Annotated[str | None, Pattern("^a$")])
    with pytest.raises(TypeError, match="applies to a tuple"):
        TypeAdapter(Annotated[tuple[str, ...] | None, FromArray()])


def test_values_nested_thousands_deep_are_refused_not_a_traceback(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    assert_names(refused(path), path, "(syntax)", "nested too deep")
