"""barrier-centre: the command centre's commands (status, watch, web); each group of commands registers its own.

Exit codes as barrierctl's: 0 done, 1 error, 2 usage, 5 the broker not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable

import structlog
from rich.console import Console
from rich.live import Live

from centre.fleet import Fleet
from centre.lockdown_cli import add_lockdown_commands
from centre.broker import add_login_options, broker_from, parse_host_port
from centre.listen import BrokerUnreachable, Listener
from centre.render import live_view, status_table

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 5
DEFAULT_FILTER = "barrier-supervisor/#"
EXAMPLES = """examples:
  barrier-centre status --broker centre-broker:1883 --prefix 'border/#' --json
  barrier-centre watch --prefix 'barrier-supervisor/#'
  barrier-centre web --listen 127.0.0.1:8090
  barrier-centre keygen --out /etc/barrier-centre/hq-1.pem --key-id hq-1
  barrier-centre lockdown --sites north,east --prefix-of north=border/north --prefix-of east=border/east \\
      --reason "convoy alert" --operator duty-1 --key /etc/barrier-centre/hq-1.pem --key-id hq-1
"""


def broker_options(parser: argparse.ArgumentParser) -> None:
    """Where the sites' publication is read: the broker and the topic filter over the sites' prefixes."""
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT", help="the centre's MQTT broker")
    parser.add_argument("--prefix", default=DEFAULT_FILTER, metavar="FILTER",
                        help=f"MQTT topic filter over the sites' prefixes (default {DEFAULT_FILTER})")
    add_login_options(parser)


def listener_from(args: argparse.Namespace, fleet: Fleet) -> Listener:
    return Listener(fleet, broker_from(args), args.prefix)


def add_watch_commands(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser("status", help="the fleet's picture once (retained state), then exit")
    broker_options(status)
    status.add_argument("--json", action="store_true", help="the picture as JSON")
    status.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="wait at most this long for every site's lanes and devices (default 10)")
    status.set_defaults(func=run_status)
    watch = subparsers.add_parser("watch", help="a live terminal view of every site and its lanes")
    broker_options(watch)
    watch.set_defaults(func=run_watch)


def add_web_commands(subparsers: argparse._SubParsersAction) -> None:
    web = subparsers.add_parser("web", help="a read-only web page of the fleet, pushed live")
    broker_options(web)
    web.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT",
                     help="loopback only unless --tls-cert and --tls-key are given")
    web.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS (needed off loopback)")
    web.add_argument("--tls-key", help="PEM private key for --tls-cert")
    web.set_defaults(func=run_web)


# Every group of barrier-centre commands: a function adding its subcommands (the group lockdown's join here).
COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_watch_commands,
    add_web_commands,
    add_lockdown_commands,
]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="barrier-centre", description="The command centre: many crossings at once.",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(subparsers)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet = args.command in ("status", "watch")  # their stdout is the picture: only warnings, on stderr
    # sys.stderr looked up at each message, not kept: a caller may swap it (tests capture it per test)
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING if quiet else logging.INFO))
    try:
        return args.func(args)
    except ValueError as exc:  # a bad --broker or --listen: said plainly
        print(f"barrier-centre: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokerUnreachable as exc:
        print(f"barrier-centre: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    fleet = Fleet()
    listener = listener_from(args, fleet)
    complete = asyncio.run(listener.retained(args.timeout))
    picture = fleet.picture()
    if args.json:
        print(json.dumps(picture, indent=2, ensure_ascii=False))
    else:
        Console().print(status_table(picture))
    if not picture["sites"]:
        print(f"barrier-centre: no site publishes under {args.prefix!r} on {listener.broker}", file=sys.stderr)
        return EXIT_ERROR
    if not complete:
        print(f"barrier-centre: not every site's lanes and devices arrived within {args.timeout:g} s",
              file=sys.stderr)
    return EXIT_OK


def link_words(listener: Listener) -> str:
    if listener.connected:
        return f"connected to {listener.broker}, filter {listener.topic_filter}"
    return f"NOT CONNECTED to {listener.broker}: {listener.error or 'connecting'}"


def run_watch(args: argparse.Namespace) -> int:
    fleet = Fleet()
    listener = listener_from(args, fleet)

    async def watch() -> None:
        task = asyncio.create_task(listener.run())
        try:
            with Live(live_view(fleet.picture(), link_words(listener)), auto_refresh=False, screen=False) as live:
                while not task.done():
                    live.update(live_view(fleet.picture(), link_words(listener)), refresh=True)
                    await asyncio.sleep(0.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(watch())
    return EXIT_OK


def run_web(args: argparse.Namespace) -> int:
    from centre.web import serve  # aiohttp only for the web page

    host, port = parse_host_port(args.listen, 8090)
    fleet = Fleet()
    asyncio.run(serve(fleet, listener_from(args, fleet), host, port, args.tls_cert, args.tls_key))
    return EXIT_OK
