"""Default places for the control socket and the state directory, shared by barrierd and barrierctl."""

from __future__ import annotations

import os
from pathlib import Path


def default_socket() -> Path:
    """$BARRIERD_SOCKET, else /run/barrierd/barrierd.sock for root, else the user's runtime directory."""
    if env := os.environ.get("BARRIERD_SOCKET"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/barrierd/barrierd.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/barrierd-{os.geteuid()}"
    return Path(runtime) / "barrierd.sock"


def default_state_dir() -> Path:
    """/var/lib/barrierd for root, else ~/.local/state/barrierd."""
    if os.geteuid() == 0:
        return Path("/var/lib/barrierd")
    return Path.home() / ".local" / "state" / "barrierd"
