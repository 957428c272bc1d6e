"""The physical floor: round-trip time of the smallest Modbus TCP read on loopback, with nothing in the way.

A raw-socket client (blocking, TCP_NODELAY) sends FC4 "read 1 input register" requests, one at a time,
to a raw-socket server in another process that parses each 12-byte request and answers with the
11-byte reply. Whatever barrierd adds to a Modbus exchange is measured against this.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from bench.procs import percentile

WARMUP = 200
REQUESTS_PER_SECOND_OF_BENCH = 2000  # --seconds 10 → 20 000 requests (about a second of measuring)

_measured: dict[str, float] | None = None  # the floor measured in this run, for the ratios of other benchmarks

TITLE = "Floor: Modbus TCP FC4 round trip on loopback, raw sockets"
NOTES = (
    "The physical floor every other latency is compared with: a blocking raw-socket client sends FC4 "
    "\"read 1 input register\" (12-byte request, 11-byte reply, TCP_NODELAY) to a raw-socket server in "
    "another process, one request at a time, after 200 unmeasured ones. Measured once per run; "
    "command_latency divides by this run's p99."
)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


# The server, run with `python -c` in its own process: prints its port, answers every FC4 request for
# one register with 0x1234 until the client closes.
SERVER = """
import socket, struct, sys
def recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data
with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            tid, proto, length, unit, fc, address, count = struct.unpack(">HHHBBHH", recv_exactly(conn, 12))
            conn.sendall(struct.pack(">HHHBBBH", tid, 0, 5, unit, fc, 2, 0x1234))
    except ConnectionError:
        pass
"""


def round_trips(requests: int) -> list[float]:
    """Round-trip times in seconds of `requests` FC4 reads (after WARMUP unmeasured ones)."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True)
    try:
        assert server.stdout is not None
        readable, _, _ = select.select([server.stdout], [], [], 20)
        if not readable:
            raise RuntimeError("floor server did not start")
        port = int(server.stdout.readline())
        times = []
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(WARMUP + requests):
                tid = i & 0xFFFF
                request = struct.pack(">HHHBBHH", tid, 0, 6, 1, 4, 0, 1)
                started = time.perf_counter()
                sock.sendall(request)
                reply = _recv_exactly(sock, 11)
                elapsed = time.perf_counter() - started
                if reply[:2] != request[:2] or reply[7:9] != b"\x04\x02":
                    raise RuntimeError(f"floor: unexpected reply {reply.hex()}")
                if i >= WARMUP:
                    times.append(elapsed)
        return times
    finally:
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def measure_floor(requests: int) -> dict[str, float]:
    """p50 / p99 / max round trip in ms; remembered as this run's floor."""
    global _measured
    times = round_trips(requests)
    _measured = {
        "requests": len(times),
        "p50_ms": percentile(times, 50) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "max_ms": max(times) * 1000,
    }
    return _measured


def floor_reference(requests: int = 5000) -> dict[str, float]:
    """The floor measured earlier in this run, or measured now."""
    return _measured if _measured is not None else measure_floor(requests)


def floor(seconds: float) -> list[dict[str, Any]]:
    result = measure_floor(max(500, int(REQUESTS_PER_SECOND_OF_BENCH * seconds)))
    return [{
        "exchange": "FC4 read 1 register, raw sockets, server in another process",
        "requests": result["requests"],
        "p50_us": round(result["p50_ms"] * 1000, 1),
        "p99_us": round(result["p99_ms"] * 1000, 1),
        "max_us": round(result["max_ms"] * 1000, 1),
    }]
