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

from controller.cli_parser import DEVICE_VERBS, build_parser, commands, to_request, unknown_command
from controller.cli_wait import run_with_progress, wait_in_place
from controller.completion import bash_script, names
from controller.exit_codes import ExitCode
from controller.paths import NoDefaultSocket, default_socket
from controller.render_health import health_view
from controller.render import alarms_table, event_lines, events_table, status_tables, status_view
from controller.socket_trust import UntrustedSocket, check_listener, check_socket_file

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


def watch(sock_path: Path, interval: float, console: Console) -> int:
    """Redraw the status table until interrupted."""
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                reply = request(sock_path, "status")
                view = status_view(reply["data"]) if reply["exit"] == ExitCode.DONE else Text(reply["message"])
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


def site_names(sock_path: Path | None) -> dict | None:
    """Device names with their verbs and lane names of the running site, for help; None if not reachable."""
    try:
        reply = request(sock_path or default_socket(), "status", timeout_s=2)
    except (DaemonUnreachable, NoDefaultSocket):
        return None
    if reply.get("exit") != ExitCode.DONE:
        return None
    data = reply["data"]
    return {"devices": {d["name"]: d.get("verbs", []) for d in data["devices"]},
            "lanes": [lane["name"] for lane in data["lanes"]]}


def parse(argv: list[str]) -> argparse.Namespace | int:
    """Parsed arguments, or an exit code once a usage problem was reported."""
    parser = build_parser()
    if (unknown := unknown_command(argv, parser)) is not None:
        print(f"barrierctl: {unknown}", file=sys.stderr)
        return ExitCode.USAGE
    if "-h" in argv or "--help" in argv:
        socket_arg = argv[argv.index("--socket") + 1] if "--socket" in argv[:-1] else None
        parser = build_parser(site_names(Path(socket_arg) if socket_arg else None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if (bad := not_unicode(args)) is not None:
        print(f"barrierctl: {bad} is not valid Unicode (UTF-8); nothing sent", file=sys.stderr)
        return ExitCode.USAGE
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args
    if args.command == "completion":
        print(bash_script(commands(build_parser()), list(DEVICE_VERBS)))
        return ExitCode.DONE
    console = Console()
    try:
        sock_path = args.socket or default_socket()
        if args.command == "watch":
            return watch(sock_path, args.interval, console)
        if args.command == "events" and args.follow:
            return follow_events(sock_path, args.limit, args.interval, args.json, console)
        if args.command == "names":
            reply = request(sock_path, "status")
            if reply["exit"] == ExitCode.DONE:
                print("\n".join(names(reply["data"], args.what, args.verb)))
            return reply["exit"]
        reply = run(sock_path, args, console)
    except (DaemonUnreachable, NoDefaultSocket) as exc:
        print(f"barrierctl: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except KeyboardInterrupt:
        return 0
    return show(reply, args, sock_path, console)


def run(sock_path: Path, args: argparse.Namespace, console: Console) -> dict:
    """Send the command; with --wait on a lane, draw its devices until the answer comes."""
    command, request_args = to_request(args)
    call = lambda: request(sock_path, command, request_args, timeout_s=120)  # noqa: E731
    if not getattr(args, "wait", False) or args.command != "lane":
        return call()
    lane = next((x for x in request(sock_path, "status")["data"]["lanes"] if x["name"] == args.lane), None)
    if lane is None:
        return call()  # barrierd names the lanes it knows
    goal = {"open", "green"} if args.action == "open" else {"closed", "red"}
    return run_with_progress(call, lambda: _status_or_nothing(sock_path), lane["devices"], console, goal)


def _status_or_nothing(sock_path: Path) -> dict:
    try:
        reply = request(sock_path, "status", timeout_s=2)
    except DaemonUnreachable:
        return {}
    return reply.get("data") or {}


def show(reply: dict, args: argparse.Namespace, sock_path: Path, console: Console) -> int:
    """Print the reply for a person (or --json); with --wait on a device, wait until it is in place."""
    code = reply["exit"]
    if getattr(args, "json", False) and reply["data"] is not None:
        print(json.dumps(reply["data"], indent=2))
    if code != ExitCode.DONE:
        print(f"barrierctl: {reply['message']}", file=sys.stderr)
    elif getattr(args, "json", False):
        pass
    elif args.command == "health":
        console.print(health_view(reply["data"]))
    elif args.command == "status":
        for table in status_tables(reply["data"]):
            console.print(table)
    elif args.command == "events":
        console.print(events_table(reply["data"]["events"]))
    elif args.command == "alarms":
        console.print(alarms_table(reply["data"]["alarms"]))
    else:
        print(reply["message"])
    if code == ExitCode.DONE and getattr(args, "wait", False) and args.command in DEVICE_VERBS:
        waited = wait_in_place(lambda: _status_or_nothing(sock_path), args.device, args.command, console)
        print(waited.message, file=sys.stdout if waited.code == ExitCode.DONE else sys.stderr)
        return waited.code
    return code


if __name__ == "__main__":
    sys.exit(main())
