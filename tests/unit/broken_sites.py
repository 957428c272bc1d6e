"""The broken sites the loader test refuses: each a mutation of the demo site and the keys it must name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# ---------------------------------------------------------------------------
# Broken sites built by mutating the demo
# ---------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(section: str, index: int | None, key: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        target = raw[section] if index is None else raw[section][index]
        target[key] = value

    return mutate


def _delete(section: str, index: int, *keys: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        for key in keys:
            del raw[section][index][key]

    return mutate


def _append(section: str, entry: dict[str, Any]) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        raw.setdefault(section, []).append(entry)

    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        for m in mutations:
            m(raw)

    return mutate


def _to_bus(index: int, bus: str, unit: int = 1) -> Mutation:
    """Move plc[index] from Modbus TCP to Modbus RTU on `bus`."""

    def mutate(raw: dict[str, Any]) -> None:
        plc = raw["plc"][index]
        del plc["host"], plc["port"]
        plc["bus"] = bus
        plc["unit"] = unit

    return mutate


BUS = {"name": "rs485-1", "port": "/dev/ttyUSB0", "baudrate": 19200}
GATE_3 = {"name": "gate-3", "kind": "folding_gate", "plc": "plc-bay", "slot": 2}

# id -> (mutation, expected problems as {key: reason fragment}); each mutation is chosen so
# that these are the ONLY problems the loader reports.
BROKEN: dict[str, tuple[Mutation, dict[str, str]]] = {
    # unknown keys
    "unknown-top-level-key": (
        lambda raw: raw.__setitem__("colour", "red"),
        {"colour": "extra inputs are not permitted"},
    ),
    "unknown-top-level-table": (
        lambda raw: raw.__setitem__("devices", [{"name": "x"}]),
        {"devices": "extra inputs are not permitted"},
    ),
    "unknown-key-in-device": (
        _set("device", 0, "colour", "red"),
        {'device[0] ("gate-1").colour': "extra inputs are not permitted"},
    ),
    "unknown-key-in-site": (
        _set("site", None, "colour", "red"),
        {"site.colour": "extra inputs are not permitted"},
    ),
    "unknown-key-in-plc": (
        _set("plc", 2, "ip", "10.0.0.1"),
        {'plc[2] ("plc-bay").ip': "extra inputs are not permitted"},
    ),
    "unknown-key-in-lane": (
        _set("lane", 1, "speed", 5),
        {'lane[1] ("lane-2").speed': "extra inputs are not permitted"},
    ),
    "unknown-key-in-interlock": (
        _set("interlock", 0, "name", "airlock"),
        {'interlock[0] ("airlock").name': "extra inputs are not permitted"},
    ),
    "unknown-key-in-access": (
        _set("access", None, "admin", ["root"]),
        {"access.admin": "extra inputs are not permitted"},
    ),
    # missing keys / sections
    "missing-device-slot": (
        _delete("device", 3, "slot"),
        {'device[3] ("gate-2").slot': "field required"},
    ),
    "missing-site-section": (
        lambda raw: raw.pop("site"),
        {"site": "field required"},
    ),
    "no-plc": (
        lambda raw: raw.__setitem__("plc", []),
        {"plc": "at least 1"},
    ),
    "device-not-a-table": (
        lambda raw: raw.__setitem__("device", ["gate-1"]),
        {"device[0]": "valid dictionary"},
    ),
    # duplicates
    "duplicate-device-name": (
        _append("device", {"name": "gate-1", "kind": "folding_gate", "plc": "plc-bay", "slot": 2}),
        {'device.name ("gate-1")': "duplicate name"},
    ),
    "duplicate-plc-name": (
        _append("plc", {"name": "plc-bay", "host": "127.0.0.1", "port": 15099}),
        {'plc.name ("plc-bay")': "duplicate name"},
    ),
    "duplicate-lane-name": (
        _append("lane", {"name": "lane-1", "boom": "bay-entry"}),
        {'lane.name ("lane-1")': "duplicate name"},
    ),
    "duplicate-bus-name": (
        _all(_append("bus", dict(BUS)), _append("bus", dict(BUS, port="/dev/ttyUSB1")), _to_bus(2, "rs485-1")),
        {'bus.name ("rs485-1")': "duplicate name"},
    ),
    # slots
    "two-devices-on-one-slot": (
        _append("device", {"name": "bay-extra", "kind": "boom_barrier", "plc": "plc-bay", "slot": 1}),
        {
            'device[7] ("bay-exit").slot': 'slot 1 of "plc-bay" is used by two devices',
            'device[8] ("bay-extra").slot': 'slot 1 of "plc-bay" is used by two devices',
        },
    ),
    "non-contiguous-slots": (
        _set("device", 2, "slot", 5),
        {'plc ("plc-lane-1")': "contiguous"},
    ),
    "plc-without-devices": (
        _append("plc", {"name": "plc-spare", "host": "127.0.0.1", "port": 15099}),
        {'plc[3] ("plc-spare")': "no devices"},
    ),
    # dangling references and wrong roles
    "device-on-missing-plc": (
        _append("device", {"name": "spare", "kind": "boom_barrier", "plc": "plc-nowhere", "slot": 0}),
        {'device[8] ("spare").plc': 'no plc named "plc-nowhere"'},
    ),
    "lane-missing-device": (
        _set("lane", 0, "gate", "gate-9"),
        {'lane[0] ("lane-1").gate': 'no device named "gate-9"'},
    ),
    "lane-gate-as-blocker": (
        _all(_append("device", dict(GATE_3)), _append("lane", {"name": "lane-3", "blocker": "gate-3"})),
        {'lane[2] ("lane-3").blocker': '"gate-3" is a folding_gate, not a blocker'},
    ),
    "lane-blocker-as-signal": (
        _all(
            _append("device", {"name": "blocker-3", "kind": "road_blocker", "plc": "plc-bay", "slot": 2}),
            _append("lane", {"name": "lane-3", "signal": "blocker-3"}),
        ),
        {'lane[2] ("lane-3").signal': "not a signal"},
    ),
    "lane-without-devices": (
        _append("lane", {"name": "lane-3"}),
        {'lane[2] ("lane-3")': "at least one device"},
    ),
    "device-in-two-lanes": (
        _append("lane", {"name": "lane-3", "gate": "gate-1"}),
        {'device ("gate-1")': "more than one lane"},
    ),
    "lane-secure-order-names-a-step-twice": (
        _set("lane", 0, "secure_order", ["signal", "clear", "blocker", "gate", "gate"]),
        {'lane[0] ("lane-1")': "secure_order names a step twice"},
    ),
    "lane-open-order-leaves-out-its-signal": (
        _set("lane", 0, "open_order", ["gate", "blocker"]),
        {'lane[0] ("lane-1")': "open_order leaves out ['signal'], which this lane has"},
    ),
    "lane-open-order-with-an-unknown-step": (
        _set("lane", 0, "open_order", ["gate", "blocker", "signal", "clear"]),
        {'lane[0] ("lane-1").open_order[3]': "'gate', 'blocker', 'boom' or 'signal'"},
    ),
    "lane-secure-order-not-an-array": (
        _set("lane", 0, "secure_order", "signal, blocker, gate"),
        {'lane[0] ("lane-1").secure_order': "valid tuple"},
    ),
    "interlock-missing-device": (
        _set("interlock", 0, "devices", ["bay-entry", "bay-gone"]),
        {"interlock[0].devices": 'no device named "bay-gone"'},
    ),
    "interlock-on-signal": (
        _set("interlock", 0, "devices", ["bay-entry", "signal-1"]),
        {"interlock[0].devices": "signal"},
    ),
    "interlock-same-device-twice": (
        _set("interlock", 0, "devices", ["bay-entry", "bay-entry"]),
        {"interlock[0].devices": "same device twice"},
    ),
    "interlock-three-devices": (
        _set("interlock", 0, "devices", ["bay-entry", "bay-exit", "gate-1"]),
        {"interlock[0].devices": "at most 2"},
    ),
    "interlock-device-not-a-string": (
        _set("interlock", 0, "devices", ["bay-entry", 7]),
        {"interlock[0].devices[1]": "valid string"},
    ),
    "interlock-unknown-kind": (
        _set("interlock", 0, "kind", "never_both_closed"),
        {"interlock[0].kind": "never_both_open"},
    ),
    # ranges
    "poll-ms-zero": (_set("site", None, "poll_ms", 0), {"site.poll_ms": "greater than or equal to 10"}),
    "slot-16": (_set("device", 0, "slot", 16), {'device[0] ("gate-1").slot': "less than 16"}),
    "slot-negative": (_set("device", 0, "slot", -1), {'device[0] ("gate-1").slot': "greater than or equal to 0"}),
    "port-70000": (_set("plc", 0, "port", 70000), {'plc[0] ("plc-lane-1").port': "less than or equal to 65535"}),
    "port-zero": (_set("plc", 1, "port", 0), {'plc[1] ("plc-lane-2").port': "greater than or equal to 1"}),
    "watchdog-50": (
        _set("plc", 0, "watchdog_ms", 50),
        {'plc[0] ("plc-lane-1").watchdog_ms': "watchdog_ms must be 0 (off) or 100..60000"},
    ),
    "watchdog-60001": (
        _set("plc", 2, "watchdog_ms", 60001),
        {'plc[2] ("plc-bay").watchdog_ms': "100..60000"},
    ),
    "travel-s-negative": (
        _set("device", 0, "travel_s", -1),
        {'device[0] ("gate-1").travel_s': "greater than 0"},
    ),
    "travel-s-zero": (
        _set("device", 6, "travel_s", 0.0),
        {'device[6] ("bay-entry").travel_s': "greater than 0"},
    ),
    "unit-zero": (_set("plc", 0, "unit", 0), {'plc[0] ("plc-lane-1").unit': "greater than or equal to 1"}),
    "unit-248": (_set("plc", 0, "unit", 248), {'plc[0] ("plc-lane-1").unit': "less than or equal to 247"}),
    "clear-time-negative": (
        _set("lane", 0, "clear_time_s", -0.5),
        {'lane[0] ("lane-1").clear_time_s': "greater than or equal to 0"},
    ),
    # wrong types and values
    "poll-ms-string": (_set("site", None, "poll_ms", "fast"), {"site.poll_ms": "valid integer"}),
    "poll-ms-float": (_set("site", None, "poll_ms", 100.0), {"site.poll_ms": "valid integer"}),
    "slot-bool": (_set("device", 1, "slot", True), {'device[1] ("blocker-1").slot': "valid integer"}),
    "port-string": (_set("plc", 0, "port", "15020"), {'plc[0] ("plc-lane-1").port': "valid integer"}),
    "unknown-device-kind": (
        _set("device", 0, "kind", "drawbridge"),
        {'device[0] ("gate-1").kind': "folding_gate"},
    ),
    "bad-device-name": (
        _set("device", 0, "name", "Gate 1"),
        {'device[0] ("Gate 1").name': "pattern"},
    ),
    "access-not-a-list": (
        _set("access", None, "viewer", "@barrier-view"),
        {"access.viewer": "valid list"},
    ),
    # transports
    "plc-host-and-bus": (
        _all(_append("bus", dict(BUS)), _set("plc", 0, "bus", "rs485-1")),
        {'plc[0] ("plc-lane-1")': "either host/port (Modbus TCP) or bus (Modbus RTU), not both"},
    ),
    "plc-neither-host-nor-bus": (
        _delete("plc", 1, "host", "port"),
        {'plc[1] ("plc-lane-2")': "needs host and port (Modbus TCP) or bus (Modbus RTU)"},
    ),
    "plc-host-without-port": (
        _delete("plc", 1, "port"),
        {'plc[1] ("plc-lane-2")': "needs both host and port"},
    ),
    "plc-on-missing-bus": (
        _to_bus(2, "rs485-9"),
        {'plc[2] ("plc-bay").bus': 'no bus named "rs485-9"'},
    ),
    "two-plcs-same-unit-on-one-bus": (
        _all(_append("bus", dict(BUS)), _to_bus(1, "rs485-1", unit=7), _to_bus(2, "rs485-1", unit=7)),
        {
            'plc[1] ("plc-lane-2").unit': 'unit 7 used twice on bus "rs485-1"',
            'plc[2] ("plc-bay").unit': 'unit 7 used twice on bus "rs485-1"',
        },
    ),
    "two-plcs-same-host-port": (
        _set("plc", 1, "port", 15020),
        {
            'plc[0] ("plc-lane-1").port': "another PLC already uses 127.0.0.1:15020",
            'plc[1] ("plc-lane-2").port': "another PLC already uses 127.0.0.1:15020",
        },
    ),
    "bus-bad-baudrate": (
        _all(_append("bus", dict(BUS, baudrate=12345)), _to_bus(2, "rs485-1")),
        {'bus[0] ("rs485-1").baudrate': "19200"},
    ),
    "bus-bad-parity": (
        _all(_append("bus", dict(BUS, parity="X")), _to_bus(2, "rs485-1")),
        {'bus[0] ("rs485-1").parity': "'E'"},
    ),
    "mqtt-wildcard-in-topic-prefix": (
        lambda raw: raw.__setitem__("mqtt", {"host": "broker", "topic_prefix": "crossings/#"}),
        {"mqtt.topic_prefix": "string should match pattern"},
    ),
    "mqtt-password-in-the-site-file": (
        lambda raw: raw.__setitem__("mqtt", {"host": "broker", "password": "secret"}),
        {"mqtt.password": "extra inputs are not permitted"},
    ),
    "mqtt-refresh-too-fast": (
        lambda raw: raw.__setitem__("mqtt", {"host": "broker", "refresh_s": 0.1}),
        {"mqtt.refresh_s": "greater than or equal to 1"},
    ),
    "panel-on-a-network-address": (
        lambda raw: raw.__setitem__("panel", {"host": "0.0.0.0", "port": 8080}),
        {"panel.host": "loopback address only"},
    ),
    "mqtt-without-host": (
        lambda raw: raw.__setitem__("mqtt", {"port": 1883}),
        {"mqtt.host": "field required"},
    ),
    "condition-service-interval-of-a-signal": (
        _set("condition", None, "service_cycles", {"traffic_signal": 1000}),
        {"condition.service_cycles": "'traffic_signal' is not a kind that travels"},
    ),
    "condition-accumulator-minimum-above-nominal": (
        _set("condition", None, "accumulator_min_bar", 200.0),
        {"condition": "accumulator_min_bar must be below accumulator_nominal_bar"},
    ),
    "condition-misspelt-cold-opt-in": (
        _set("condition", None, "refuse_open_when_cold", True),
        {"condition.refuse_open_when_cold": "extra inputs are not permitted"},
    ),
    "condition-device-service-interval-zero": (
        _set("device", 0, "service_cycles", 0),
        {'device[0] ("gate-1").service_cycles': "greater than or equal to 1"},
    ),
}
