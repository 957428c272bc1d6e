"""`python -m bench [--seconds N] [--only NAME] [--out DIR]`: run the benchmarks and write the reports."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import structlog

from bench.runner import BENCHMARKS, run, write_reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per row (default 10)")
    parser.add_argument("--only", action="append", choices=[b.name for b in BENCHMARKS], help="run only this one")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="report directory (default bench/)")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    report = run(chosen, args.seconds, progress=lambda text: print(text, file=sys.stderr, flush=True))
    md, js = write_reports(report, args.out)
    print(md.read_text(), end="")
    print(f"written: {md} {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
