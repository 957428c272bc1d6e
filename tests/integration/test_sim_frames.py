"""sim-plc as a process under seeded mutated Modbus frames, over TCP and RTU: the profile's answers, a log without tracebacks."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymodbus.framer.rtu import FramerRTU

from config.loader import load_site
from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, HeaderHolding, input_block_size, slot_base
from tests.integration.frame_fuzz import Mutator, Request, mbap, read, rtu, write_multiple, write_single
from tests.integration.rtu_support import BUS, PLCS, line_site
from tests.integration.test_sim_cli import DEMO, free_ports, read_line, sim_plc_command

pytestmark = pytest.mark.timeout(90)

SEED = 12
TCP_FRAMES = 3000
TCP_WORKERS = 8
RTU_FRAMES = 600
SILENCE_WAIT_S = 0.03  # how long a TCP frame that may not be answered is given
RTU_SILENCE_WAIT_S = 0.015  # over RTU (t3.5 at 115200 baud is 1.75 ms): most mutations there are not frames
RTU_IDLE_S = 0.1  # above sim_plc.serial_server.MIN_FRAME_GAP_S (0.05), as a master's reply timeout is
ANSWER_WAIT_S = 2.0  # a well-framed request is always answered: this is only a bound for a loaded machine
PLC = "plc-lane-1"
UNIT = 1
CLOSED_LINE = re.compile(r" WARNING sim_plc\.tcp_server: PLC plc-lane-1: closed the connection from .*: not Modbus TCP \(")


@dataclass
class Served:
    """A running sim-plc and the file its log (stderr) goes to."""

    proc: subprocess.Popen[str]
    log: Path
    port: int = 0
    tty: int = -1  # master end of the pty whose other end sim-plc serves RTU on

    def stop(self) -> str:
        """SIGTERM, check it exits 0, and return its log."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(timeout=10) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.log.read_text()


def spawn(log: Path, *args: str) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen([*sim_plc_command(), *args, "--log-level", "INFO"], stdout=subprocess.PIPE,
                                stderr=stderr, stdin=subprocess.DEVNULL, text=True)


@pytest.fixture
def tcp_sim(tmp_path: Path) -> Iterator[Served]:
    ports = iter(free_ports(3))
    site = tmp_path / "site.toml"
    site.write_text(re.sub(r"^port = \d+", lambda _: f"port = {next(ports)}", DEMO.read_text(), flags=re.MULTILINE))
    log = tmp_path / "sim.log"
    proc = spawn(log, "serve", "--config", str(site), "--plc", PLC, "--control", str(tmp_path / "ctl.sock"))
    try:
        ready = read_line(proc, 15)
        served = Served(proc, log, port=int(re.search(r'"plc-lane-1": (\d+)', ready).group(1)))
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def rtu_sim(tmp_path: Path) -> Iterator[Served]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    line_site(tmp_path, tmp_path / "master", 115200)
    log = tmp_path / "sim.log"
    proc = spawn(log, "serve", "--config", str(tmp_path / "rtu-site.toml"), "--serial", f"{BUS}={os.ttyname(slave)}",
                 "--control", str(tmp_path / "ctl.sock"))
    try:
        read_line(proc, 15)
        yield Served(proc, log, tty=master)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def quiet_log(log: str) -> list[str]:
    """Lines a technician would read as trouble: tracebacks, errors, and warnings other than a closed
    non-Modbus connection (one line each)."""
    return [line for line in log.splitlines()
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
            or (" WARNING " in line and not CLOSED_LINE.search(line))]


# ---- Modbus TCP ---------------------------------------------------------------------------------
def tcp_exchange(port: int, request: Request, transaction: int = 7) -> bytes | str:
    """Send one frame on a new connection; the reply's PDU (function code and body), or what went wrong."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WAIT_S) as sock:
        sock.sendall(mbap(transaction, request))
        try:
            head = recv_exactly(sock, 7)
            tid, protocol, length, unit = struct.unpack(">HHHB", head)
            if (tid, protocol, unit) != (transaction, 0, request.unit):
                return f"a reply with MBAP header {head.hex()}"
            return recv_exactly(sock, length - 1)
        except (TimeoutError, ConnectionError) as exc:
            return f"no reply: {exc!r}"


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data.hex()!r}")
        data += chunk
    return data


@dataclass
class TcpRun:
    answered: int = 0
    silent: int = 0
    closed: int = 0
    wrong: list[str] = field(default_factory=list)


async def fuzz_tcp(port: int, frames: list[tuple[int, bytes, bool]]) -> TcpRun:
    """Send every frame, each worker on its own connection, one frame at a time; a connection that
    stays silent is replaced, so every well-framed request meets a clean stream."""
    run = TcpRun()

    async def worker(share: list[tuple[int, bytes, bool]]) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for transaction, frame, well_framed in share:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(frame)
            try:
                head = await asyncio.wait_for(reader.readexactly(7), ANSWER_WAIT_S if well_framed else SILENCE_WAIT_S)
                tid, protocol, length, unit = struct.unpack(">HHHB", head)
                pdu = await asyncio.wait_for(reader.readexactly(length - 1), ANSWER_WAIT_S)
            except asyncio.TimeoutError:
                run.silent += 1
                if well_framed:
                    run.wrong.append(f"no answer to {frame.hex()}")
            except (asyncio.IncompleteReadError, ConnectionError):
                run.closed += 1
            else:
                run.answered += 1
                if well_framed and (tid, protocol, unit, pdu[0] & 0x7F) != (transaction, 0, frame[6], frame[7] & 0x7F):
                    run.wrong.append(f"{frame.hex()} answered {(head + pdu).hex()}")
                continue
            writer.close()
            reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker(frames[k::TCP_WORKERS]) for k in range(TCP_WORKERS)))
    return run


def profile_answers(unit: int, foreign: int, slots: int) -> list[tuple[str, Request, bytes, bytes]]:
    """Well-known frames and the profile's answers to them over TCP and over RTU (b'' = silence)."""
    header = struct.pack(">BBHH", 4, 4, PROFILE_MAGIC, PROFILE_VERSION)
    answers = [
        ("a valid read of the header", Request(unit, read(4, 0, 2)), header, header),
        ("another unit id", Request(foreign, read(4, 0, 1)), bytes([0x84, 0x04]), b""),
        ("unit id 0", Request(0, read(4, 0, 1)), bytes([0x84, 0x04]), b""),
        ("an input register past the block", Request(unit, read(4, input_block_size(slots), 1)), bytes([0x84, 0x02])),
        ("a holding register not in the map", Request(unit, read(3, slot_base(0) + 2, 1)), bytes([0x83, 0x02])),
        ("FC16 to a missing slot", Request(unit, write_multiple(slot_base(slots), [1, 1])), bytes([0x90, 0x02])),
        ("WATCHDOG_TIMEOUT_MS out of range", Request(unit, write_single(HeaderHolding.WATCHDOG_TIMEOUT_MS, 50)),
         bytes([0x86, 0x03])),
        ("a read of 0 registers", Request(unit, read(3, 0, 0)), bytes([0x83, 0x03])),
        ("a read of 126 registers", Request(unit, read(4, 0, 126)), bytes([0x84, 0x03])),
        ("diagnostics (FC8), not in the profile", Request(unit, bytes.fromhex("0800001234")), bytes([0x88, 0x01])),
        # over RTU a function code nobody defines has no known frame length: the line stays silent
        ("an unknown function code", Request(unit, bytes.fromhex("4100")), bytes([0xC1, 0x01]), b""),
        ("an exception reply sent as a request", Request(unit, bytes.fromhex("8302")), bytes([0x83, 0x01])),
    ]
    return [(what, request, tcp, *(rest or (tcp,))) for what, request, tcp, *rest in answers]


def test_mutated_tcp_frames_get_the_profiles_answers_and_no_traceback(tcp_sim: Served) -> None:
    slots = len(load_site(DEMO).slot_kinds(PLC))
    mutator = Mutator(SEED, UNIT, slots)
    frames = [(tid, *mutator.tcp_frame(tid)) for tid in range(1, TCP_FRAMES + 1)]
    started = time.monotonic()
    run = asyncio.run(fuzz_tcp(tcp_sim.port, frames))
    elapsed = time.monotonic() - started
    print(f"{TCP_FRAMES} TCP frames in {elapsed:.1f} s: {run}")
    answers = {what: (tcp_exchange(tcp_sim.port, request), answer)
               for what, request, answer, _ in profile_answers(UNIT, UNIT + 1, slots)}
    with socket.create_connection(("127.0.0.1", tcp_sim.port), timeout=ANSWER_WAIT_S) as sock:
        sock.sendall(mbap(1, Request(UNIT, read(4, 0, 1)), protocol=0x4242))
        try:
            answers["a stream that is not Modbus TCP is closed"] = (sock.recv(64), b"")
        except TimeoutError:
            answers["a stream that is not Modbus TCP is closed"] = ("left open", b"")
    log = tcp_sim.stop()

    assert log.count("Traceback") == 0
    assert quiet_log(log) == []
    assert {what: got for what, (got, expected) in answers.items() if got != expected} == {}
    assert run.wrong == []
    assert run.answered + run.silent + run.closed == TCP_FRAMES
    assert run.answered > TCP_FRAMES // 2 and run.closed > 0, run
    assert len(CLOSED_LINE.findall(log)) == run.closed + 1  # one line per closed connection, no more


# ---- Modbus RTU ---------------------------------------------------------------------------------
def rtu_send(master: int, frame: bytes, wait_s: float, idle_s: float = 0.0) -> bytes:
    """Keep the line idle for idle_s (dropping anything late on it), write `frame`, and return what
    comes back within wait_s (until the line has been quiet for 5 ms once something came)."""
    while select.select([master], [], [], idle_s)[0]:
        os.read(master, 4096)
    os.write(master, frame)
    reply = b""
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([master], [], [], min(left, 0.005) if reply else left)[0]:
            if reply:
                break
            continue
        reply += os.read(master, 4096)
    return reply


def rtu_exchange(master: int, request: Request) -> bytes:
    """The PDU of the reply to `request`, after checking its unit id and CRC; b'' for silence. Like a
    master after a request that got no answer, it first keeps the line idle for longer than the slave's
    frame gap, so what a garbled frame left in the slave's buffer is dropped."""
    reply = rtu_send(master, rtu(request), 0.3, idle_s=RTU_IDLE_S)
    if not reply:
        return b""
    assert reply[0] == request.unit and FramerRTU.check_CRC(reply[:-2], int.from_bytes(reply[-2:], "big")), reply.hex()
    return reply[1:-2]


def test_mutated_rtu_frames_get_the_profiles_answers_and_no_traceback(rtu_sim: Served) -> None:
    units = {unit for unit, _ in PLCS.values()}
    unit, kinds = PLCS["plc-1"]
    mutator = Mutator(SEED, unit, len(kinds))
    started = time.monotonic()
    replies = [rtu_send(rtu_sim.tty, mutator.rtu_frame(), RTU_SILENCE_WAIT_S) for _ in range(RTU_FRAMES)]
    answered = [r for r in replies if r]
    print(f"{RTU_FRAMES} RTU frames in {time.monotonic() - started:.1f} s, {len(answered)} answered")
    answers = {what: (rtu_exchange(rtu_sim.tty, request), answer)
               for what, request, _, answer in profile_answers(unit, max(units) + 1, len(kinds))}
    log = rtu_sim.stop()

    assert log.count("Traceback") == 0
    assert quiet_log(log) == []
    assert {what: got for what, (got, expected) in answers.items() if got != expected} == {}
    assert len(answered) > RTU_FRAMES // 20  # a mutated RTU frame rarely keeps a CRC, a size and a served unit
    assert all(r[0] in units for r in answered), "only the units on the line answer"
