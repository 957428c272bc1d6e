"""Run a Python script (barrierd's) in this interpreter with the stderr of every process it forks sent to a file.

Usage: python [-X importtime] child_stderr_apart.py CHILD_LOG SCRIPT ARGS...: the script's own stderr is
unchanged, so `-X importtime` lines there are the imports of the process itself, and CHILD_LOG has its children's.
"""

from __future__ import annotations

import os
import runpy
import sys


def _stderr_to_child_log() -> None:
    fd = os.open(CHILD_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


CHILD_LOG = sys.argv[1]
os.register_at_fork(after_in_child=_stderr_to_child_log)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
