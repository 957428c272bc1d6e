"""barrierctl's check that a control socket belongs to barrierd before anything is sent to it."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
from pathlib import Path

DAEMON_USER = "barrierd"  # User= of deploy/barrierd.service; BARRIERD_USER names another


class UntrustedSocket(Exception):
    """The path is not a socket, or is owned by a user who is not barrierd's."""


def trusted_uids() -> set[int]:
    """root, the daemon's configured user (if it exists) and the caller itself."""
    uids = {0, os.geteuid()}
    try:
        uids.add(pwd.getpwnam(os.environ.get("BARRIERD_USER") or DAEMON_USER).pw_uid)
    except KeyError:
        pass
    return uids


def describe_uid(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def check_socket_file(path: Path) -> None:
    """Refuse a path that is not itself a socket (a symlink is not followed) or whose owner is not
    trusted. FileNotFoundError passes through: nothing listens there."""
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a socket"
        raise UntrustedSocket(f"refusing {path}: it is {kind}, so it is not barrierd's control socket")
    if info.st_uid not in trusted_uids():
        raise UntrustedSocket(
            f"refusing {path}: it is owned by {describe_uid(info.st_uid)}, not by root, "
            f"barrierd's user or you; nothing was sent (give barrierd's socket with --socket or BARRIERD_SOCKET)"
        )


def check_listener(sock: socket.socket, path: Path) -> None:
    """Refuse a connected socket whose listening process runs as an untrusted user (the kernel's
    SO_PEERCRED: this holds even if the path was swapped after check_socket_file)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    if uid not in trusted_uids():
        raise UntrustedSocket(
            f"refusing {path}: the process listening on it (pid {pid}) runs as {describe_uid(uid)}, "
            "not as root, barrierd's user or you; nothing was sent"
        )
