"""barrierctl: the guards' and technicians' command line, talking to barrierd over its Unix socket."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live

from controller.commands import ExitCode
from controller.paths import default_socket
from controller.render import events_table, status_tables

DEVICE_VERBS = {
    "open": "open a device (a blocker: lower it)",
    "close": "close a device (a blocker: raise it)",
    "stop": "stop a device where it is",
    "raise": "raise a road blocker",
    "lower": "lower a road blocker",
    "green": "turn a traffic signal green",
    "red": "turn a traffic signal red",
    "reset": "clear a device's fault once its cause is gone (technician)",
}


class DaemonUnreachable(Exception):
    pass


def request(sock_path: Path, command: str, args: dict | None = None, timeout_s: float = 30.0) -> dict:
    """Send one request and return the daemon's reply."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(sock_path))
            sock.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise DaemonUnreachable(f"barrierd is not running (no answer on {sock_path}: {exc.strerror})") from exc
    except PermissionError as exc:
        raise DaemonUnreachable(f"no permission to use {sock_path}") from exc
    except TimeoutError as exc:
        raise DaemonUnreachable(f"barrierd did not answer on {sock_path} within {timeout_s:.0f} s") from exc
    if not line:
        raise DaemonUnreachable(f"barrierd closed the connection on {sock_path}")
    return json.loads(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="barrierctl", description="Command the barrier supervisor.")
    parser.add_argument("--socket", type=Path, default=None, help="barrierd control socket")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="devices and PLCs")
    status.add_argument("--json", action="store_true")
    events = sub.add_parser("events", help="recent events")
    events.add_argument("--json", action="store_true")
    events.add_argument("--limit", type=int, default=30)
    watch = sub.add_parser("watch", help="live status until Ctrl-C")
    watch.add_argument("--interval", type=float, default=0.5)
    for verb, text in DEVICE_VERBS.items():
        sub.add_parser(verb, help=text).add_argument("device")
    return parser


def watch(sock_path: Path, interval: float, console: Console) -> int:
    """Redraw the status table until interrupted."""
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                reply = request(sock_path, "status")
                view = Group(*status_tables(reply["data"]))
            except DaemonUnreachable as exc:
                view = f"[red]{exc}[/]"
            live.update(view, refresh=True)
            time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sock_path = args.socket or default_socket()
    console = Console()
    try:
        if args.command == "watch":
            return watch(sock_path, args.interval, console)
        if args.command == "status":
            reply = request(sock_path, "status")
        elif args.command == "events":
            reply = request(sock_path, "events", {"limit": args.limit})
        else:
            reply = request(sock_path, args.command, {"device": args.device})
    except DaemonUnreachable as exc:
        print(f"barrierctl: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except KeyboardInterrupt:
        return 0
    code = reply["exit"]
    if code != ExitCode.DONE:
        print(f"barrierctl: {reply['message']}", file=sys.stderr)
        return code
    if getattr(args, "json", False):
        print(json.dumps(reply["data"], indent=2))
    elif args.command == "status":
        for table in status_tables(reply["data"]):
            console.print(table)
    elif args.command == "events":
        console.print(events_table(reply["data"]["events"]))
    else:
        print(reply["message"])
    return code


if __name__ == "__main__":
    sys.exit(main())
