"""End to end: hostile requests on barrierd's real socket are each answered with one JSON line, and only the
well-formed authorised commands among them reach a PLC, each recorded."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.profile import slot_base
from tests.e2e.harness import BIN
from tests.e2e.test_device_commands import command_writes

pytestmark = pytest.mark.e2e

DEVICES = ["gate-1", "blocker-1", "signal-1", "gate-2", "blocker-2", "signal-2", "bay-entry", "bay-exit"]
LANES = ["lane-1", "lane-2"]
READ_ONLY = {"status", "events", "alarms", "audit_verify"}
ACTING = [  # real commands that would move something if they got through
    '"command":"open","args":{"device":"gate-1"',
    '"command":"lower","args":{"device":"blocker-1"',
    '"command":"green","args":{"device":"signal-1"',
    '"command":"lockdown","args":{"reason":"fuzz"',
    '"command":"maintenance_enter","args":{"lane":"lane-2","reason":"fuzz"',
]
VALID_CLOSE = b'{"command":"close","args":{"device":"gate-1"}}'
GATE_1_CLOSE = (slot_base(0), 2)  # gate-1 is slot 0 of plc-lane-1; COMMAND 2 is CLOSE


def exchange(path: Path, line: bytes) -> dict:
    """Send one line on a new connection and return the one reply line (asserting there is exactly one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        try:
            sock.sendall(line + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after an oversize line: its reply is still waiting
        sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert data.endswith(b"\n") and data.count(b"\n") == 1, f"not one reply line to {line[:120]!r}: {data[:300]!r}"
    reply = json.loads(data)
    assert isinstance(reply, dict) and isinstance(reply["exit"], int) and isinstance(reply["message"], str), reply
    return reply


# --- what breaks a bound: inserted as an unused argument of a real, acting command ---

def _bound_breakers() -> st.SearchStrategy[bytes]:
    depth = st.integers(8, 3000).map(lambda d: b"[" * d + b"]" * d)  # 9 levels or more with the request
    huge = st.one_of(st.integers(2**53 + 1, 10**40), st.integers(-(10**40), -(2**53) - 1)).map(lambda n: str(n).encode())
    not_finite = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-2e999"])
    surrogate = st.integers(0xD800, 0xDFFF).map(lambda c: json.dumps("ok" + chr(c)).encode())
    bad_bytes = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80", b"\xfe\xff"]).map(
        lambda b: b'"intruder' + b + b'"')
    oversize = st.integers(16 * 1024, 80 * 1024).map(lambda n: b'"' + b"x" * n + b'"')
    return st.one_of(depth, huge, not_finite, surrogate, bad_bytes, oversize)


@st.composite
def out_of_bounds(draw) -> bytes:
    acting = draw(st.sampled_from(ACTING)).encode()
    extra = draw(_bound_breakers())
    if draw(st.booleans()):
        return b"{" + acting + b',"x":' + extra + b"}}"
    return b"{" + acting + b'},"x":' + extra + b"}"


# --- not a request at all ---

not_objects = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
    st.one_of(st.lists(st.integers(-10, 10), max_size=5), st.text(max_size=20), st.integers(-100, 100),
              st.none(), st.booleans()).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"}", b'{"command":', b"\xef\xbb\xbf" + VALID_CLOSE, VALID_CLOSE + b"{}",
                     b'{"command":"open","args":{"device":"gate-1"}', b"\x00" * 10]),
)

# --- well-formed, dispatched and refused: junk names and args, nothing that can act ---

json_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
not_a_name = st.one_of(
    st.text(max_size=30).filter(lambda s: s not in DEVICES and s not in LANES),
    st.sampled_from(["gate-1 ", "GATE-1", "gate-1\x00", "gate\u20111", "ｇａｔｅ-1", "lane-1\u202e", "gate-1\n"]),
    st.integers(-5, 5), st.none(), st.lists(st.sampled_from(DEVICES), max_size=2),
)
verbs = st.sampled_from(["open", "close", "stop", "raise", "lower", "green", "red", "reset"])
refused_requests = st.one_of(
    st.builds(lambda v, d, j: {"command": v, "args": {"device": d, "junk": j}}, verbs, not_a_name, json_junk),
    st.builds(lambda v, l: {"command": v, "args": {"lane": l}}, st.sampled_from(["lane_open", "lane_secure"]),
              not_a_name),
    st.builds(lambda c, a: {"command": c, "args": a},
              st.text(max_size=40).filter(lambda s: not s.isidentifier() or s.startswith("zz")),
              st.dictionaries(st.text(max_size=8), json_junk, max_size=4)),
)
wrong_shapes = st.one_of(  # a name that is not a string, args that are not an object: malformed, never dispatched
    st.builds(lambda c, a: {"command": c, "args": a}, st.one_of(st.integers(), st.none(), st.lists(st.integers())),
              st.dictionaries(st.text(max_size=8), json_junk, max_size=3)),
    st.builds(lambda v, a: {"command": v, "args": a}, verbs,
              st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.text(min_size=1, max_size=10),
                        st.integers(1, 9), st.just([{"device": "gate-1"}]))),
)
read_only_requests = st.builds(lambda c, a: {"command": c, "args": a}, st.sampled_from(sorted(READ_ONLY)),
                               st.one_of(st.dictionaries(st.text(max_size=8), json_junk, max_size=3),
                                         st.dictionaries(st.sampled_from(["limit", "after"]),
                                                         st.integers(-(2**53), 2**53))))

fuzz_cases = st.one_of(
    out_of_bounds().map(lambda line: ("bounds", line)),
    not_objects.map(lambda line: ("malformed", line)),
    wrong_shapes.map(lambda r: ("malformed", json.dumps(r).encode())),
    refused_requests.map(lambda r: ("refused", json.dumps(r).encode())),
    read_only_requests.map(lambda r: ("read_only", json.dumps(r).encode())),
)

CORPUS = [  # the requests the issue found unanswered, each once, whatever the generator draws
    ("bounds", b'{"command":"open","args":{"device":"gate-1","x":' + b"[" * 978 + b"]" * 978 + b"}}"),
    ("malformed", b"[" * 60_000),
    ("malformed", b'{"command":"events","args":{"after":' + b"9" * 30 + b"}}"),
    ("bounds", b'{"command":"lockdown","args":{"reason":"' + b"x" * 70_000 + b'"}}'),
    ("bounds", b'{"command":"lockdown","args":{"reason":"intruder\\udcff"}}'),
    ("bounds", b'{"command":"maintenance_enter","args":{"lane":"lane-1","reason":"intruder\\udcff"}}'),
    ("bounds", b'{"command":"lockdown","args":{"reason":"intruder\xff"}}'),
    ("refused", b'{"command":"zz-unknown","args":{"blob":"' + b"y" * 12_000 + b'"}}'),
]


def test_every_hostile_request_is_answered_and_only_valid_commands_act_and_are_recorded(site_processes):
    procs = site_processes
    sent = {"bounds": 0, "malformed": 0, "refused": 0, "read_only": 0, "valid": 0}

    def send(kind: str, line: bytes) -> dict:
        reply = exchange(procs.socket, line)
        sent[kind] += 1
        if kind in ("bounds", "malformed"):
            assert reply["exit"] == 2 and reply["outcome"] == "usage", (line[:200], reply)
            assert reply["message"].startswith(("malformed request: ", "request too large")), reply
        elif kind == "refused":
            assert reply["exit"] in (2, 3), (line[:200], reply)
            assert not reply["message"].startswith("malformed request"), reply
        elif kind == "valid":
            assert reply["exit"] == 0, reply
        return reply

    send("valid", VALID_CLOSE)
    for kind, line in CORPUS:
        send(kind, line)
    send("valid", b'{"command":"close","args":{"device":"gate-1","note":["shallow",{"ok":1}]}}')

    @settings(max_examples=400, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.function_scoped_fixture])
    @given(fuzz_cases)
    def fuzz(case: tuple[str, bytes]) -> None:
        send(*case)

    fuzz()
    send("valid", VALID_CLOSE)
    assert min(sent["bounds"], sent["malformed"], sent["refused"]) > 30, sent

    writes = [(w["address"], w["values"][0]) for w in command_writes(procs.writes()) if w["plc"] == "plc-lane-1"]
    others = [w for w in command_writes(procs.writes()) if w["plc"] != "plc-lane-1"]
    assert writes == [GATE_1_CLOSE] * sent["valid"] and others == [], "only the valid closes reached a PLC"
    with sqlite3.connect(procs.event_db) as db:
        rows = db.execute("SELECT command, args, outcome FROM commands ORDER BY id").fetchall()
    closes = [r for r in rows if r[0] == "close" and json.loads(r[1]).get("device") == "gate-1" and r[2] == "done"]
    assert len(closes) == sent["valid"], "each valid command is recorded"
    assert len(rows) == sent["valid"] + sent["refused"], "a request refused at the socket is never dispatched"
    not_utf8 = subprocess.run([BIN / "barrierctl", "--socket", procs.socket, "lockdown", "--reason", b"intruder\xff"],
                              capture_output=True, timeout=30)
    assert not_utf8.returncode == 2 and b"not valid Unicode (UTF-8); nothing sent" in not_utf8.stderr
    with sqlite3.connect(procs.event_db) as db:
        assert db.execute("SELECT count(*) FROM commands").fetchone()[0] == len(rows), "barrierctl sent nothing"
    status = procs.status()
    assert status["lockdown"] is None, "no lockdown latched by a refused request"
    assert all(lane["mode"] != "maintenance" for lane in status["lanes"])
    assert {d["name"]: d["state"] for d in status["devices"]}["gate-1"] == "closed"
    assert "Traceback" not in procs.daemon_log() and "control_request_failed" not in procs.daemon_log()
