"""The hand-written reference for barrierd's polling cost: the same Modbus TCP exchanges on a bare asyncio protocol.

`python bench/hand_loop.py --config SITE.toml [--loop uvloop|asyncio]` does what bench/bare_loop.py does (per TCP
PLC one FC4 read of the header and every slot each poll period on a fixed grid, an FC6 SUPERVISOR_HEARTBEAT every
watchdog_ms / 4), but frames each request with struct on an asyncio.Protocol, one per PLC, and checks of a reply
only its transaction id, function code and byte count. It runs on uvloop unless told otherwise. It prints
{"event": "bare_loop_ready"} once every PLC has answered, {"polls": {plc: good reads}, "t": unix time} on each
SIGUSR1; SIGTERM stops it. Only the standard library and uvloop are imported: its CPU and memory are the floor
for this work in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
import time
import tomllib
from pathlib import Path

HEADER, STRIDE = 16, 12  # hal.profile.HEADER_SIZE, SLOT_STRIDE (not imported: pydantic-free)
MBAP = struct.Struct(">HHHB")
REQUEST = struct.Struct(">HHHBBHH")  # MBAP + function code, address, count or value


class Link(asyncio.Protocol):
    """One PLC's socket: the reply awaited, by transaction id."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiting: tuple[int, asyncio.Future] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.waiting is not None and not self.waiting[1].done():
            self.waiting[1].set_exception(ConnectionError("lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 7:
            tid, _, length, _ = MBAP.unpack_from(self.buffer)
            if len(self.buffer) < 6 + length:
                return
            pdu = bytes(self.buffer[7:6 + length])
            del self.buffer[:6 + length]
            if self.waiting is not None and self.waiting[0] == tid and not self.waiting[1].done():
                self.waiting[1].set_result(pdu)

    async def exchange(self, tid: int, unit: int, fc: int, address: int, value: int, timeout_s: float) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiting = (tid, future)
        assert self.transport is not None
        self.transport.write(REQUEST.pack(tid, 0, 6, unit, fc, address, value))
        return await asyncio.wait_for(future, timeout_s)


async def poll_plc(name: str, plc: dict, slots: int, poll_s: float, counts: dict[str, int],
                   answered: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    timeout_s = plc.get("timeout_ms", 300) / 1000
    heartbeat_s = plc.get("watchdog_ms", 3000) / 4000 or 1.0
    unit, count = plc.get("unit", 1), HEADER + STRIDE * slots
    link: Link | None = None
    tid = heartbeat = 0
    next_heartbeat = next_poll = loop.time()
    while True:
        started = loop.time()
        try:
            if link is None or link.transport is None:
                _, link = await loop.create_connection(Link, plc["host"], plc["port"])
            if started >= next_heartbeat:
                heartbeat, tid = (heartbeat + 1) & 0xFFFF, (tid + 1) & 0xFFFF
                await link.exchange(tid, unit, 6, 0, heartbeat, timeout_s)
                next_heartbeat = started + heartbeat_s
            tid = (tid + 1) & 0xFFFF
            pdu = await link.exchange(tid, unit, 4, 0, count, timeout_s)
            if pdu[0] == 4 and pdu[1] == 2 * count and len(pdu) == 2 + 2 * count:
                counts[name] += 1
                answered.set()
        except (OSError, TimeoutError, ConnectionError):
            pass  # a reference loop: count nothing, try again next period
        next_poll += poll_s
        if next_poll <= loop.time():
            next_poll = loop.time() + poll_s
        await asyncio.sleep(next_poll - loop.time())


async def main_async(config: Path) -> None:
    site = tomllib.loads(config.read_text())
    poll_s = site["site"].get("poll_ms", 100) / 1000
    plcs = {p["name"]: p for p in site["plc"] if "host" in p}
    slots = {name: sum(1 for d in site["device"] if d["plc"] == name) for name in plcs}
    counts = {name: 0 for name in plcs}
    answered = {name: asyncio.Event() for name in plcs}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps({"polls": counts, "t": time.time()}), flush=True))
    tasks = [asyncio.create_task(poll_plc(n, p, slots[n], poll_s, counts, answered[n])) for n, p in plcs.items()]
    await asyncio.gather(*(event.wait() for event in answered.values()))
    print(json.dumps({"event": "bare_loop_ready", "plcs": len(plcs)}), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/hand_loop.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main_async(args.config))
    else:
        asyncio.run(main_async(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
