"""`barrier-centre keygen` and `barrier-centre lockdown`: the centre's signing key and its group lockdown."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre import protocol
from centre.broker import add_login_options, broker_from
from centre.lockdown_send import REPLY_WAIT_S, send_lockdown

EXIT_OK, EXIT_NOT_SECURED, EXIT_USAGE = 0, 1, 2


def add_lockdown_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `keygen` and `lockdown` to barrier-centre's subcommands."""
    keygen = subparsers.add_parser("keygen", help="make an Ed25519 signing key for group lockdowns",
                                   description="Write a new private key (PEM, mode 0600) and print the line "
                                               "a site adds under [centre.keys].")
    keygen.add_argument("--out", required=True, type=Path, help="private key file to create (never overwritten)")
    keygen.add_argument("--key-id", default=None, help="the key's name at the sites (default: from its hash)")
    keygen.set_defaults(func=run_keygen)

    lockdown = subparsers.add_parser(
        "lockdown", help="lock down every lane of several sites at once (signed)",
        description="Sign a lockdown, publish it to each site's PREFIX/centre/lockdown, wait for their replies. "
                    "Exit 0 only when every site accepted and every device is confirmed secured.",
        epilog="example: barrier-centre lockdown --sites north,south --reason 'armed vehicle' --operator duty-1 "
               "--key centre.pem --key-id hq-1 --broker broker.hq:1883 "
               "--prefix-of north=crossings/north --prefix-of south=crossings/south")
    which = lockdown.add_mutually_exclusive_group(required=True)
    which.add_argument("--sites", help="comma-separated site names (each needs a --prefix-of)")
    which.add_argument("--all", action="store_true", help='every site given with --prefix-of, signed as "*"')
    lockdown.add_argument("--reason", required=True, help=f"why (1..{protocol.MAX_REASON} characters)")
    lockdown.add_argument("--operator", required=True, help=f"who orders it (1..{protocol.MAX_OPERATOR} characters)")
    lockdown.add_argument("--key", required=True, type=Path, help="the private key file from keygen")
    lockdown.add_argument("--key-id", required=True, help="the key's name in the sites' [centre.keys]")
    lockdown.add_argument("--broker", required=True, help="HOST:PORT of the MQTT broker the sites listen on")
    add_login_options(lockdown)
    lockdown.add_argument("--prefix-of", action="append", default=[], metavar="SITE=PREFIX",
                          help="a site's topic prefix ([mqtt] topic_prefix there); repeat per site")
    lockdown.add_argument("--ttl", type=float, default=30.0, help=f"seconds the command is valid (≤ {protocol.MAX_WINDOW_S:.0f})")
    lockdown.add_argument("--wait", type=float, default=REPLY_WAIT_S, help="seconds to wait for the replies")
    lockdown.add_argument("--json", action="store_true",
                          help="print the outcome as JSON: when it was sent, and each site's reply (null: none)")
    lockdown.set_defaults(func=run_lockdown)


def run_keygen(args: argparse.Namespace) -> int:
    key = Ed25519PrivateKey.generate()
    public = protocol.public_key_text(key)
    key_id = args.key_id or "centre-" + hashlib.sha256(public.encode()).hexdigest()[:8]
    if not protocol.KEY_ID.match(key_id):
        print(f"barrier-centre: key id {key_id!r}: letters, digits, '_', '.', '-' (1..64)", file=sys.stderr)
        return EXIT_USAGE
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"barrier-centre: cannot create {args.out}: {exc.strerror}; nothing written", file=sys.stderr)
        return EXIT_USAGE
    with os.fdopen(fd, "wb") as out:
        out.write(protocol.private_key_pem(key))
    print(f"# add under [centre.keys] in each site file that takes lockdowns from this key:\n"
          f'{key_id} = "{public}"')
    return EXIT_OK


def run_lockdown(args: argparse.Namespace) -> int:
    try:
        targets = _targets(args)
        broker = broker_from(args)
        key = protocol.load_private_key(args.key.read_bytes())
        if not protocol.KEY_ID.match(args.key_id):
            raise ValueError(f"--key-id {args.key_id!r}: letters, digits, '_', '.', '-' (1..64)")
        sites = ["*"] if args.all else list(targets)
        payload = protocol.new_payload(sites, args.reason, args.operator, time.time(), args.ttl)
    except (OSError, ValueError, TypeError) as exc:
        print(f"barrier-centre: {exc}; nothing sent", file=sys.stderr)
        return EXIT_USAGE
    envelope = protocol.sign(key, args.key_id, payload)
    outcome = asyncio.run(send_lockdown(broker, targets, envelope, payload["id"], args.wait))
    print(json.dumps(outcome.as_dict(), indent=2) if args.json else "\n".join(outcome.lines()))
    return EXIT_OK if outcome.all_secured else EXIT_NOT_SECURED


def _targets(args: argparse.Namespace) -> dict[str, str]:
    prefixes: dict[str, str] = {}
    for item in args.prefix_of:
        site, sep, prefix = item.partition("=")
        if not sep or not site or not prefix or any(c in prefix for c in "#+"):
            raise ValueError(f"--prefix-of {item!r}: give SITE=PREFIX (no MQTT wildcards)")
        prefixes[site] = prefix.rstrip("/")
    if args.all:
        if not prefixes:
            raise ValueError("--all means every site given with --prefix-of; none given")
        return prefixes
    names = [s.strip() for s in args.sites.split(",") if s.strip()]
    if not names:
        raise ValueError("--sites names no site")
    unknown = [s for s in names if s not in prefixes]
    if unknown:
        raise ValueError(f"no --prefix-of for {', '.join(unknown)}")
    return {s: prefixes[s] for s in names}
