"""Site files for the benchmarks, generated: lanes of gate + blocker + signal, or PLCs with N slots each.

Every PLC listens on 127.0.0.1 on a port that was free when the file was written. Travel times are
the simulator's (sim_plc.leaf.TRAVEL_S; a signal switches within a scan), so barrierd's travel
supervision agrees with the simulated plant.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

TRAVEL_S = {"folding_gate": 3.0, "road_blocker": 6.0, "boom_barrier": 2.0, "traffic_signal": 0.5}
SLOT_KINDS = ("folding_gate", "road_blocker", "boom_barrier", "traffic_signal")  # repeated to fill N slots


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, all free at the moment of the call (held open together, then closed)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _site_header(name: str, poll_ms: int) -> list[str]:
    return ["[site]", f'name = "{name}"', f"poll_ms = {poll_ms}", ""]


def _plc(name: str, port: int, timeout_ms: int, watchdog_ms: int) -> list[str]:
    return ["[[plc]]", f'name = "{name}"', 'host = "127.0.0.1"', f"port = {port}", "unit = 1",
            f"timeout_ms = {timeout_ms}", f"watchdog_ms = {watchdog_ms}", ""]


def _device(name: str, kind: str, plc: str, slot: int) -> list[str]:
    return ["[[device]]", f'name = "{name}"', f'kind = "{kind}"', f'plc = "{plc}"', f"slot = {slot}",
            f"travel_s = {TRAVEL_S[kind]}", ""]


def lanes_site(lanes: int, *, poll_ms: int = 100, timeout_ms: int = 300, watchdog_ms: int = 3000,
               name: str = "bench-lanes") -> str:
    """`lanes` vehicle lanes, lane i on PLC plc-i: gate-i (slot 0), blocker-i (slot 1), signal-i (slot 2)."""
    ports = free_ports(lanes)
    lines = _site_header(name, poll_ms)
    for i, port in enumerate(ports, start=1):
        lines += _plc(f"plc-{i}", port, timeout_ms, watchdog_ms)
    for i in range(1, lanes + 1):
        for slot, (role, kind) in enumerate((("gate", "folding_gate"), ("blocker", "road_blocker"),
                                             ("signal", "traffic_signal"))):
            lines += _device(f"{role}-{i}", kind, f"plc-{i}", slot)
    for i in range(1, lanes + 1):
        lines += ["[[lane]]", f'name = "lane-{i}"', f'gate = "gate-{i}"', f'blocker = "blocker-{i}"',
                  f'signal = "signal-{i}"', ""]
    return "\n".join(lines)


def slots_site(plcs: int, slots: int = 4, *, poll_ms: int = 100, timeout_ms: int = 300, watchdog_ms: int = 3000,
               name: str = "bench-scale") -> str:
    """`plcs` PLCs plc-1.. with `slots` devices each (gate, blocker, boom, signal, repeated); no lanes."""
    ports = free_ports(plcs)
    lines = _site_header(name, poll_ms)
    for i, port in enumerate(ports, start=1):
        lines += _plc(f"plc-{i}", port, timeout_ms, watchdog_ms)
    for i in range(1, plcs + 1):
        for slot in range(slots):
            kind = SLOT_KINDS[slot % len(SLOT_KINDS)]
            lines += _device(f"d{i}-{slot}", kind, f"plc-{i}", slot)
    return "\n".join(lines)


def write_site(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
