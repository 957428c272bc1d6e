"""When barrierd's polls leave for each PLC: its FC4 read requests on loopback, timed by the kernel (AF_PACKET).

A packet socket on `lo` sees every segment barrierd sends; the kernel stamps each one as it is sent
(SO_TIMESTAMPNS), so the capture thread's own lateness does not count. A poll is an FC4 request for
input register 0 (the header block; a PLC of more than nine slots has a second read, not counted).
Needs root (CAP_NET_RAW).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from bench.procs import percentile

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's numbers; this Python's socket module lacks both
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
CAPTURE_BUFFER = 32 << 20  # bytes: the kernel keeps the segments (and their times) while the thread waits for the GIL
SOL_PACKET, PACKET_STATISTICS = 263, 6
PACKET_OUTGOING = 4  # a loopback segment is seen twice, sent and received: count it once
ETH_HEADER = 14
IPV4, TCP = 0x0800, 6
FC_READ_INPUT = 4
SO_ATTACH_FILTER = 26
# classic BPF (linux/filter.h): opcodes, and the packet type the kernel offers at an ancillary offset
LD_W_ABS, LD_H_ABS, LD_B_ABS, LDX_B_MSH, LD_H_IND, JEQ_K, RET_K = 0x20, 0x28, 0x30, 0xB1, 0x48, 0x15, 0x06
AD_PKTTYPE = 0xFFFFF000 + 4


def port_filter(ports: list[int]) -> list[tuple[int, int, int, int]]:
    """A classic BPF program keeping only IPv4 TCP segments sent to one of `ports`, as they leave: under a flood
    the kernel queues nothing else for the capture (unfiltered, it dropped thousands of segments a second)."""
    reject, accept = "reject", "accept"  # jump labels, resolved below into instruction counts
    program: list[tuple[int, str | None, str | None, int]] = [
        (LD_W_ABS, None, None, AD_PKTTYPE), (JEQ_K, None, reject, PACKET_OUTGOING),
        (LD_H_ABS, None, None, 12), (JEQ_K, None, reject, IPV4),
        (LD_B_ABS, None, None, ETH_HEADER + 9), (JEQ_K, None, reject, TCP),
        (LDX_B_MSH, None, None, ETH_HEADER), (LD_H_IND, None, None, ETH_HEADER + 2),  # X = IP header length
        *[(JEQ_K, accept, None, port) for port in ports],
        (RET_K, None, None, 0), (RET_K, None, None, 0x40000),
    ]
    at = {reject: len(program) - 2, accept: len(program) - 1}
    return [(code, at[jt] - i - 1 if jt else 0, at[jf] - i - 1 if jf else 0, k)
            for i, (code, jt, jf, k) in enumerate(program)]


def read_requests(frame: bytes) -> Iterator[tuple[int, int, int]]:
    """(destination TCP port, function code, first address) of each Modbus TCP request in an Ethernet frame;
    nothing for a frame that is not IPv4 TCP with a payload."""
    if len(frame) < ETH_HEADER + 20 or struct.unpack_from(">H", frame, 12)[0] != IPV4:
        return
    ip = ETH_HEADER
    if frame[ip + 9] != TCP:
        return
    tcp = ip + (frame[ip] & 0x0F) * 4
    if len(frame) < tcp + 20:
        return
    port = struct.unpack_from(">H", frame, tcp + 2)[0]
    at = tcp + (frame[tcp + 12] >> 4) * 4
    while at + 10 <= len(frame):  # MBAP: transaction, protocol, length (unit + PDU), unit; then fc, address
        _, protocol, length = struct.unpack_from(">HHH", frame, at)
        if protocol != 0 or length < 2:
            return
        yield port, frame[at + 7], struct.unpack_from(">H", frame, at + 8)[0]
        at += 6 + length


class PollCapture:
    """For the length of a with-block, the kernel's send time of every poll to the given PLC ports."""

    def __init__(self, ports: Iterable[int]) -> None:
        self.ports = set(ports)
        self.times: dict[int, list[float]] = {port: [] for port in self.ports}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._program = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *insn) for insn in port_filter(sorted(self.ports))))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack(
            "HL", len(self._program) // 8, ctypes.addressof(self._program)))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, CAPTURE_BUFFER)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="poll-capture", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, ancillary, _, address = self._sock.recvmsg(65536, 64)
            except TimeoutError:
                continue
            if address[2] != PACKET_OUTGOING:
                continue
            stamp = next((struct.unpack("qq", data) for level, kind, data in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            for port, fc, first in read_requests(frame):
                if port in self.ports and fc == FC_READ_INPUT and first == 0 and stamp is not None:
                    with self._lock:
                        self.times[port].append(stamp[0] + stamp[1] / 1e9)

    def snapshot(self) -> dict[int, list[float]]:
        with self._lock:
            return {port: list(times) for port, times in self.times.items()}

    def dropped(self) -> int:
        """Packets the kernel dropped for this socket since the last call (its buffer was full)."""
        return struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]

    def __enter__(self) -> PollCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


def intervals_ms(times_by_plc: dict[Any, list[float]], since: float, until: float) -> list[float]:
    """The gaps between consecutive polls of each PLC within [since, until], in ms, all PLCs together."""
    gaps = []
    for times in times_by_plc.values():
        inside = sorted(t for t in times if since <= t <= until)
        gaps += [(b - a) * 1000 for a, b in zip(inside, inside[1:])]
    return gaps


def interval_figures(gaps_ms: list[float], period_ms: float) -> dict[str, float]:
    """p50 / p99 / max of the poll interval and of its distance from the configured period, in ms."""
    deviation = [abs(g - period_ms) for g in gaps_ms]
    return {
        "intervals": len(gaps_ms),
        "interval_p50_ms": round(percentile(gaps_ms, 50), 2),
        "interval_p99_ms": round(percentile(gaps_ms, 99), 2),
        "interval_max_ms": round(max(gaps_ms), 2),
        "deviation_p50_ms": round(percentile(deviation, 50), 2),
        "deviation_p99_ms": round(percentile(deviation, 99), 2),
        "deviation_max_ms": round(max(deviation), 2),
    }
