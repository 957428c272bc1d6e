"""barrierd: its arguments, its site file checked in a forked child while the rest of barrierd is imported, then
controller/serve.py until SIGTERM. This process never imports pydantic (config/child_loader.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import ConfigError
from config.child_loader import SiteCheck, SiteCheckFailed


EXIT_CHECK_FAILED = 1  # the site file was not judged (the check could not run): systemd starts barrierd again


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="barrierd", description="Barrier supervisor daemon.")
    parser.add_argument("--config", required=True, type=Path, help="site configuration (TOML)")
    parser.add_argument("--socket", type=Path, default=None, help="control socket path")
    parser.add_argument("--state-dir", type=Path, default=None, help="where the event store lives")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check = SiteCheck(args.config)
    except SiteCheckFailed as exc:
        print(f"barrierd: {exc}; nothing started", file=sys.stderr)
        return EXIT_CHECK_FAILED  # validated (pydantic) in a child, which runs while this process imports the rest
    from controller import serve

    serve.configure_logging(args.log_level)
    try:
        cfg = check.result()
    except ConfigError as exc:
        print(f"barrierd: configuration refused, nothing started:\n{exc}", file=sys.stderr)
        return serve.EXIT_CONFIG
    except SiteCheckFailed as exc:
        print(f"barrierd: {exc}; nothing started", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return serve.run(cfg, args)


if __name__ == "__main__":
    sys.exit(main())
