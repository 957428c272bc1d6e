"""Default places for the control socket and the state directory, shared by barrierd and barrierctl."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_SOCKET = Path("/run/barrierd/barrierd.sock")  # RuntimeDirectory=barrierd of the systemd unit


class NoDefaultSocket(Exception):
    """Neither the system daemon's directory nor a private runtime directory is there to hold the socket."""


def default_socket() -> Path:
    """$BARRIERD_SOCKET; else in systemd's $RUNTIME_DIRECTORY (the daemon as a service); else the
    system socket for root or when a system daemon is running; else the user's $XDG_RUNTIME_DIR.
    Never a shared directory such as /tmp, where another user could put a socket there first."""
    if env := os.environ.get("BARRIERD_SOCKET"):
        return Path(env)
    if runtime := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(runtime.split(":")[0]) / "barrierd.sock"
    if os.geteuid() == 0 or _system_daemon_present():
        return SYSTEM_SOCKET
    if (runtime := os.environ.get("XDG_RUNTIME_DIR")) and Path(runtime).is_absolute():
        return Path(runtime) / "barrierd.sock"
    raise NoDefaultSocket(
        f"no control socket path: {SYSTEM_SOCKET.parent} does not exist and XDG_RUNTIME_DIR is not set; "
        "give the socket with --socket or BARRIERD_SOCKET, or set XDG_RUNTIME_DIR"
    )


def default_state_dir() -> Path:
    """systemd's $STATE_DIRECTORY (StateDirectory=barrierd); else /var/lib/barrierd for root, else
    ~/.local/state/barrierd."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/barrierd")
    return Path.home() / ".local" / "state" / "barrierd"


def _system_daemon_present() -> bool:
    """The system socket's directory exists (only root can make it under /run; it is 0750, so a user
    outside group barrierd cannot look inside)."""
    try:
        return SYSTEM_SOCKET.parent.is_dir()
    except OSError:
        return False
