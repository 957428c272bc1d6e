"""The reference for barrierd's polling cost: a bare asyncio loop doing only the same Modbus exchanges.

`python -m bench.bare_loop --config SITE.toml` opens one pymodbus AsyncModbusTcpClient per TCP PLC of
the site and, per PLC, reads the header and every slot with one FC4 request each poll period
(site.poll_ms, scheduled as hal.Bus does: next poll = start of this one + period) and writes
SUPERVISOR_HEARTBEAT with FC6 every watchdog_ms / 4. Nothing is decoded, checked or recorded beyond
counting the good reads. It prints {"event": "bare_loop_ready"} once every PLC has answered, and
{"polls": {plc: good reads so far}, "t": unix time} on each SIGUSR1; SIGTERM stops it.

Only the standard library and pymodbus are imported, so its memory is the floor for the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import tomllib
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

HEADER, STRIDE = 16, 12  # hal.profile.HEADER_SIZE, SLOT_STRIDE (not imported: pydantic-free)


async def poll_plc(name: str, plc: dict, slots: int, poll_s: float, counts: dict[str, int],
                   answered: asyncio.Event) -> None:
    client = AsyncModbusTcpClient(plc["host"], port=plc["port"], timeout=plc.get("timeout_ms", 300) / 1000,
                                  retries=0)
    heartbeat_s = plc.get("watchdog_ms", 3000) / 4000 or 1.0
    count = HEADER + STRIDE * slots
    loop = asyncio.get_running_loop()
    heartbeat, next_heartbeat = 0, 0.0
    while True:
        started = loop.time()
        try:
            if not client.connected:
                await client.connect()
            if started >= next_heartbeat:
                heartbeat = (heartbeat + 1) & 0xFFFF
                await client.write_register(0, heartbeat, device_id=plc.get("unit", 1))
                next_heartbeat = started + heartbeat_s
            reply = await client.read_input_registers(0, count=count, device_id=plc.get("unit", 1))
            if not reply.isError() and len(reply.registers) == count:
                counts[name] += 1
                answered.set()
        except Exception:  # noqa: BLE001 - a reference loop: count nothing, try again next period
            pass
        await asyncio.sleep(max(0.0, started + poll_s - loop.time()))


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
    loop.add_signal_handler(signal.SIGUSR1, lambda: _report(counts))
    tasks = [asyncio.create_task(poll_plc(n, p, slots[n], poll_s, counts, answered[n])) for n, p in plcs.items()]
    await asyncio.gather(*(event.wait() for event in answered.values()))
    print(json.dumps({"event": "bare_loop_ready", "plcs": len(plcs)}), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _report(counts: dict[str, int]) -> None:
    print(json.dumps({"polls": counts, "t": time.time()}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
