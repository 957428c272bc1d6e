"""barrierctl's arguments: commands, help with examples and the running site's names, "did you mean"."""

from __future__ import annotations

import argparse
import difflib
from importlib import metadata
from pathlib import Path

from hal.kinds import ALL_VERBS, VERB_HELP

DEVICE_VERBS = {verb: VERB_HELP[verb] for verb in ALL_VERBS}
WAIT_HELP = "wait until the device is confirmed in place, drawing its travel (exit 1 with the reason if it is not)"
EXAMPLES = {
    "open": "barrierctl open gate-1 --wait", "close": "barrierctl close gate-1 --wait",
    "stop": "barrierctl stop gate-1", "raise": "barrierctl raise blocker-1 --wait",
    "lower": "barrierctl lower blocker-1 --wait", "green": "barrierctl green signal-1",
    "red": "barrierctl red signal-1", "reset": "barrierctl reset gate-1",
    "lane": "barrierctl lane secure lane-1 --wait\n  barrierctl lane open lane-1",
    "lockdown": "barrierctl lockdown --reason 'vehicle forced the lane'\n"
                "  barrierctl lockdown --lane lane-2 --reason 'suspect vehicle'\n"
                "  barrierctl lockdown release --reason 'all clear'",
    "maintenance": "barrierctl maintenance enter lane-2 --reason 'loop repair'",
    "baseline": "barrierctl baseline reset gate-1 --reason 'new drive fitted'",
    "service": "barrierctl service blocker-1 --reason 'seals and oil changed'",
    "health": "barrierctl health blocker-1",
}


def version() -> str:
    try:
        return metadata.version("barrier-supervisor")
    except metadata.PackageNotFoundError:
        return "unknown"


def _epilog(command: str, names: dict | None) -> str:
    text = f"example:\n  {EXAMPLES[command]}" if command in EXAMPLES else ""
    if names is None:
        return text
    if command in ("baseline", "service"):
        return f"{text}\n\ndevices of this site: {', '.join(names['devices']) or 'none'}"
    if command in DEVICE_VERBS:
        takers = [d for d, verbs in names["devices"].items() if command in verbs]
        return f"{text}\n\ndevices of this site that take {command}: {', '.join(takers) or 'none'}"
    if command in ("lane", "maintenance", "lockdown"):
        return f"{text}\n\nlanes of this site: {', '.join(names['lanes']) or 'none'}"
    return text


def build_parser(names: dict | None = None) -> argparse.ArgumentParser:
    """The parser; `names` ({"devices": {name: verbs}, "lanes": [...]}) from the running site, for help."""
    parser = argparse.ArgumentParser(prog="barrierctl", description="Command the barrier supervisor.",
                                     epilog="exit codes: 0 done, 1 error, 2 usage, 3 refused by state or interlock, "
                                            "4 not authorised, 5 barrierd not reachable")
    parser.add_argument("--socket", type=Path, default=None, help="barrierd control socket")
    parser.add_argument("--version", action="version", version=f"barrierctl {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=_epilog(name, names),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    command("status", "devices, lanes and PLCs").add_argument("--json", action="store_true")
    events = command("events", "recent events")
    events.add_argument("--json", action="store_true", help="JSON (with --follow: one object per line)")
    events.add_argument("--limit", type=int, default=30)
    events.add_argument("--follow", action="store_true", help="then print new events as they come, until Ctrl-C")
    events.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    command("alarms", "active and unacknowledged alarms").add_argument("--json", action="store_true")
    command("ack", "acknowledge an alarm").add_argument("alarm", type=int)
    command("watch", "live status until Ctrl-C").add_argument("--interval", type=float, default=0.5)
    audit = command("audit", "check that no event or command row was altered, removed or slipped in")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("--json", action="store_true")
    for verb, text in DEVICE_VERBS.items():
        device = command(verb, text)
        device.add_argument("device")
        device.add_argument("--wait", action="store_true", help=WAIT_HELP)
    lane = command("lane", "run a lane's open or secure sequence (answered once confirmed)")
    lane.add_argument("action", choices=["open", "secure"])
    lane.add_argument("lane")
    lane.add_argument("--wait", action="store_true", help="draw the lane's devices while the sequence runs")
    lockdown = command("lockdown", "secure the site (or one lane) now, with EFO; 'release' ends it")
    lockdown.add_argument("action", nargs="?", choices=["release"], help="release a lockdown (technician)")
    lockdown.add_argument("--lane", default=None)
    lockdown.add_argument("--reason", required=True)
    lockdown.add_argument("--json", action="store_true", help="print the confirmed times as JSON")
    maintenance = command("maintenance", "take a lane out of automatic sequencing (technician)")
    maintenance.add_argument("action", choices=["enter", "exit"])
    maintenance.add_argument("lane")
    maintenance.add_argument("--reason", required=True)
    baseline = command("baseline", "start a device's timing and current/pressure baseline afresh (technician)")
    baseline.add_argument("action", choices=["reset"])
    baseline.add_argument("device")
    baseline.add_argument("--reason", required=True)
    service = command("service", "record a service of a device: its cycle count starts afresh (technician)")
    service.add_argument("device")
    service.add_argument("--reason", required=True)
    health = command("health", "per device: recent travel times, baselines, limits, cycles, service, EFO readiness")
    health.add_argument("device", nargs="?", default=None, help="only this device")
    health.add_argument("--json", action="store_true", help="the daemon's reply as JSON")
    completion = command("completion", "print the bash completion script: eval \"$(barrierctl completion bash)\"")
    completion.add_argument("shell", choices=["bash"])
    names_of = sub.add_parser("names", help=argparse.SUPPRESS)  # for the completion script
    names_of.add_argument("what", choices=["devices", "lanes"])
    names_of.add_argument("--verb", default=None)
    return parser


def commands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return list(action.choices)


def unknown_command(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """'unknown command X; did you mean Y?' when the first word is not a command, else None."""
    words = iter(argv)
    for word in words:
        if word == "--socket":
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        known = commands(parser)
        if word in known:
            return None
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; commands: {', '.join(known)}"
        return f"unknown command '{word}'{hint}"
    return None


def to_request(args: argparse.Namespace) -> tuple[str, dict]:
    """The daemon request for parsed arguments."""
    if args.command in ("status", "alarms"):
        return args.command, {}
    if args.command == "health":
        return "health", {} if args.device is None else {"device": args.device}
    if args.command == "events":
        return "events", {"limit": args.limit}
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
    if args.command == "baseline":
        return f"baseline_{args.action}", {"device": args.device, "reason": args.reason}
    if args.command == "service":
        return "service", {"device": args.device, "reason": args.reason}
    return args.command, {"device": args.device}
