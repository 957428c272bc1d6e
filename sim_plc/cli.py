"""The `sim-plc` command: serve a site's simulated PLCs, and inject faults into a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from config import ConfigError
from config.loader import load_site
from hal import event_loop
from sim_plc.control import ControlError, ControlServer, default_socket_path, send_request
from sim_plc.faults import FAULTS
from sim_plc.server import SimSite
from sim_plc.vline import VirtualLine

SUBCOMMANDS = ("serve", "inject", "faults", "state", "vline")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("sim_plc")


def _scan_ms(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 1..65535")
    return value


def _travel_scale(text: str) -> float:
    value = float(text)
    if not 0.05 <= value <= 20:
        raise argparse.ArgumentTypeError("must be 0.05..20")
    return value


def _serial(text: str) -> tuple[str, str]:
    bus, sep, path = text.partition("=")
    if not sep or not bus or not path:
        raise argparse.ArgumentTypeError("must be BUS=PATH, e.g. rs485-a=/tmp/line-b")
    return bus, path


def _baud(text: str) -> int:
    value = int(text)
    if not 50 <= value <= 4_000_000:
        raise argparse.ArgumentTypeError("must be 50..4000000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim-plc",
        description="Simulated barrier PLCs (Modbus profile v1). Without a subcommand, `serve` is assumed.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{serve,inject,faults,state,vline}")
    control_help = f"control socket (default {default_socket_path()})"

    serve = sub.add_parser("serve", help="serve the site's PLCs (Modbus TCP, RTU with --serial) until SIGTERM/SIGINT")
    serve.add_argument("--config", required=True, type=Path, help="site TOML file")
    serve.add_argument("--plc", action="append", metavar="NAME", help="serve only this PLC (repeatable)")
    serve.add_argument("--serial", action="append", type=_serial, default=[], metavar="BUS=PATH",
                       help="serve the PLCs of [[bus]] BUS as RTU slaves on serial port PATH, the other end of "
                            "the line barrierd opens (repeatable); a bus without it is skipped")
    serve.add_argument("--write-log", type=Path, metavar="FILE", help="append every client write as JSON lines")
    serve.add_argument("--control", type=Path, metavar="SOCKET", help=control_help)
    serve.add_argument("--scan-ms", type=_scan_ms, default=10, metavar="N", help="PLC scan period (default 10)")
    serve.add_argument("--travel-scale", type=_travel_scale, default=1.0, metavar="F",
                       help="every leaf travels in F times its kind's time, EFO too (default 1; e.g. 0.25 for fast "
                            "tests on a site file whose travel_s are scaled alike)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    inject = sub.add_parser("inject", help="switch a fault on (or --off) in the running sim-plc")
    inject.add_argument("--control", type=Path, metavar="SOCKET", help=control_help)
    inject.add_argument("plc", metavar="PLC")
    inject.add_argument("fault", metavar="FAULT", help=", ".join(sorted(FAULTS)))
    inject.add_argument("--slot", type=int, metavar="N", help="device slot (slot faults only)")
    inject.add_argument("--off", action="store_true", help="clear the fault instead")
    inject.add_argument("--code", "--value", dest="code", type=int, metavar="N",
                        help="drive_fault: FAULT_CODE; low_pressure: 0.1 bar; oil_temp, ambient: 0.1 °C; "
                             "wear: ppm per cycle; noise: travel σ in 0.01 %%; leak: mbar/s")

    faults = sub.add_parser("faults", help="list the active faults")
    faults.add_argument("--control", type=Path, metavar="SOCKET", help=control_help)

    state = sub.add_parser("state", help="print register image and slot states as JSON")
    state.add_argument("--control", type=Path, metavar="SOCKET", help=control_help)
    state.add_argument("plc", nargs="?", metavar="PLC")

    vline = sub.add_parser("vline", help="a virtual RS-485 line: two linked ptys paced like a UART, until SIGTERM")
    vline.add_argument("--baud", type=_baud, default=19200, metavar="N", help="pacing baud rate, 8N1 (default 19200)")
    vline.add_argument("link_a", type=Path, metavar="LINK_A", help="symlink to create for the master's end")
    vline.add_argument("link_b", type=Path, metavar="LINK_B", help="symlink to create for the slaves' end")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")  # plain `sim-plc --config FILE`
    args = build_parser().parse_args(args_list)
    if args.command == "serve":
        # with a serial line, timers to the microsecond (epoll rounds up to the millisecond): the simulated
        # RTU slaves then keep t3.5 before a reply as exactly as a PLC does. TCP alone runs on uvloop (its
        # millisecond timers keep the scan period on average: scan_loop counts periods, not sleeps).
        return event_loop.run(serve(args), precise=bool(args.serial))
    if args.command == "vline":
        return run_vline(args)
    request: dict[str, Any]
    if args.command == "inject":
        request = {"cmd": "inject", "plc": args.plc, "fault": args.fault, "slot": args.slot,
                   "active": not args.off, "code": args.code}
    elif args.command == "faults":
        request = {"cmd": "faults"}
    else:
        request = {"cmd": "state", "plc": args.plc}
    try:
        response = send_request(args.control or default_socket_path(), request)
    except ControlError as exc:
        print(f"sim-plc: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not response.get("ok"):
        print(f"sim-plc: {response.get('error', 'request failed')}", file=sys.stderr)
        return EXIT_USAGE
    body = response.get("state") if args.command == "state" else response.get("faults")
    try:
        print(json.dumps(body, indent=2), flush=True)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return EXIT_OK


async def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    try:
        site_config = load_site(args.config)
        serial = dict(args.serial)
        if len(serial) != len(args.serial):
            raise ValueError("--serial names a bus twice")
        site = SimSite(site_config, plc_names=args.plc, write_log=args.write_log, scan_ms=args.scan_ms, serial=serial,
                       travel_scale=args.travel_scale)
    except (ConfigError, ValueError) as exc:
        print(f"sim-plc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    control = ControlServer(site, args.control or default_socket_path())
    try:
        await control.start()  # first: a second sim-plc on the same socket stops before taking ports
        await site.start()
        if not site.plcs:
            print("sim-plc: no PLC to serve (PLCs on a bus need --serial BUS=PATH)", file=sys.stderr)
            return EXIT_USAGE
        ready = {"event": "sim_plc_ready", "plcs": site.ports, "serial": site.serial_ports,
                 "control": str(control.path)}
        print(json.dumps(ready), flush=True)
        await stop.wait()
        log.info("stopping")
        return EXIT_OK
    except OSError as exc:
        print(f"sim-plc: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await control.stop()
        await site.stop()


def run_vline(args: argparse.Namespace) -> int:
    """Make the line, print a ready JSON line, relay until SIGTERM/SIGINT, then remove the links."""
    line = VirtualLine(args.link_a, args.link_b, args.baud)
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the links exist, so a stop always removes them
        signal.signal(signum, lambda *_: line.request_stop())
    try:
        line.open()
    except OSError as exc:
        print(f"sim-plc vline: {exc}", file=sys.stderr)
        line.close()
        return EXIT_FAILURE
    try:
        ready = {"event": "vline_ready", "a": str(args.link_a), "b": str(args.link_b), "baud": args.baud,
                 "pid": os.getpid()}
        print(json.dumps(ready), flush=True)
        event_loop.reduce_timer_slack()  # the relay's pacing waits are then late by microseconds, not 50 us
        line.run()
    finally:
        line.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
