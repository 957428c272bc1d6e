"""barrierctl: the guards' and technicians' command line, talking to barrierd over its Unix socket."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from controller.exit_codes import ExitCode
from controller.paths import NoDefaultSocket, default_socket
from controller.render import alarms_table, event_lines, events_table, status_tables, status_view
from controller.socket_trust import UntrustedSocket, check_listener, check_socket_file

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
    """Send one request and return the daemon's reply; nothing is sent to a socket that is not
    barrierd's (owned and served by root, the daemon's user or the caller)."""
    try:
        check_socket_file(sock_path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(sock_path))
            check_listener(sock, sock_path)
            sock.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except UntrustedSocket as exc:
        raise DaemonUnreachable(str(exc)) from exc
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
    events.add_argument("--json", action="store_true", help="JSON (with --follow: one object per line)")
    events.add_argument("--limit", type=int, default=30)
    events.add_argument("--follow", action="store_true", help="then print new events as they come, until Ctrl-C")
    events.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    alarms = sub.add_parser("alarms", help="active and unacknowledged alarms")
    alarms.add_argument("--json", action="store_true")
    sub.add_parser("ack", help="acknowledge an alarm").add_argument("alarm", type=int)
    watch = sub.add_parser("watch", help="live status until Ctrl-C")
    watch.add_argument("--interval", type=float, default=0.5)
    audit = sub.add_parser("audit", help="check that no event or command row was altered, removed or slipped in")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("--json", action="store_true")
    for verb, text in DEVICE_VERBS.items():
        sub.add_parser(verb, help=text).add_argument("device")
    lane = sub.add_parser("lane", help="run a lane's open or secure sequence")
    lane.add_argument("action", choices=["open", "secure"])
    lane.add_argument("lane")
    lockdown = sub.add_parser("lockdown", help="secure the site (or one lane) now, with EFO; 'release' ends it")
    lockdown.add_argument("action", nargs="?", choices=["release"], help="release a lockdown (technician)")
    lockdown.add_argument("--lane", default=None)
    lockdown.add_argument("--reason", required=True)
    lockdown.add_argument("--json", action="store_true", help="print the confirmed times as JSON")
    maintenance = sub.add_parser("maintenance", help="take a lane out of automatic sequencing (technician)")
    maintenance.add_argument("action", choices=["enter", "exit"])
    maintenance.add_argument("lane")
    maintenance.add_argument("--reason", required=True)
    return parser


def to_request(args: argparse.Namespace) -> tuple[str, dict]:
    """The daemon request for parsed arguments."""
    if args.command == "status":
        return "status", {}
    if args.command == "events":
        return "events", {"limit": args.limit}
    if args.command == "alarms":
        return "alarms", {}
    if args.command == "ack":
        return "ack", {"alarm": args.alarm}
    if args.command == "audit":
        return f"audit_{args.action}", {}
    if args.command == "lane":
        return f"lane_{args.action}", {"lane": args.lane}
    if args.command == "lockdown":
        name = "lockdown_release" if args.action == "release" else "lockdown"
        return name, {"lane": args.lane, "reason": args.reason}
    if args.command == "maintenance":
        return f"maintenance_{args.action}", {"lane": args.lane, "reason": args.reason}
    return args.command, {"device": args.device}


def watch(sock_path: Path, interval: float, console: Console) -> int:
    """Redraw the status table until interrupted."""
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                reply = request(sock_path, "status")
                view = status_view(reply["data"])
            except DaemonUnreachable as exc:
                view = Text(str(exc), style="red")
            live.update(view, refresh=True)
            time.sleep(interval)


def follow_events(sock_path: Path, limit: int, interval: float, as_json: bool, console: Console) -> int:
    """Print the last `limit` events, then each new one as it is recorded, until interrupted."""
    after, first = 0, True
    while True:
        args = {"limit": limit} if first else {"after": after, "limit": 10_000}
        reply = request(sock_path, "events", args)
        if reply["exit"] != ExitCode.DONE:
            print(f"barrierctl: {reply['message']}", file=sys.stderr)
            return reply["exit"]
        new = reply["data"]["events"]
        if as_json:
            for event in new:
                print(json.dumps(event), flush=True)
        elif new and first:
            console.print(events_table(new))
        elif new:
            console.print(event_lines(new), markup=False, highlight=False, soft_wrap=True)
        after = max([after, *(e["id"] for e in new)])
        first = False
        time.sleep(interval)


def shown_bytes(text: str) -> str:
    """Text as the bytes that were typed, undecodable ones as \\xNN."""
    try:
        return "'" + text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") + "'"
    except UnicodeEncodeError:
        return ascii(text)


def not_unicode(args: argparse.Namespace) -> str | None:
    """The first text argument that is not valid Unicode (bytes the locale could not decode arrive as lone
    surrogates), with its name; None if all are valid."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"the {name} {shown_bytes(value)}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (bad := not_unicode(args)) is not None:
        print(f"barrierctl: {bad} is not valid Unicode (UTF-8); nothing sent", file=sys.stderr)
        return ExitCode.USAGE
    console = Console()
    try:
        sock_path = args.socket or default_socket()
        if args.command == "watch":
            return watch(sock_path, args.interval, console)
        if args.command == "events" and args.follow:
            return follow_events(sock_path, args.limit, args.interval, args.json, console)
        reply = request(sock_path, *to_request(args), timeout_s=120)
    except (DaemonUnreachable, NoDefaultSocket) as exc:
        print(f"barrierctl: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except KeyboardInterrupt:
        return 0
    code = reply["exit"]
    if getattr(args, "json", False) and reply["data"] is not None:
        print(json.dumps(reply["data"], indent=2))
    if code != ExitCode.DONE:
        print(f"barrierctl: {reply['message']}", file=sys.stderr)
    elif getattr(args, "json", False):
        pass
    elif args.command == "status":
        for table in status_tables(reply["data"]):
            console.print(table)
    elif args.command == "events":
        console.print(events_table(reply["data"]["events"]))
    elif args.command == "alarms":
        console.print(alarms_table(reply["data"]["alarms"]))
    else:
        print(reply["message"])
    return code


if __name__ == "__main__":
    sys.exit(main())
