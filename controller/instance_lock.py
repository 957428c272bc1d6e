"""One barrierd per state directory and per control socket: exclusive flocks on lock files naming the holder's PID."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import structlog

log = structlog.get_logger("controller.instance_lock")

STATE_LOCK_NAME = "barrierd.lock"
# A full or read-only disk must not stop supervision: the lock is then taken as far as the disk allows
STORAGE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class InstanceLockError(Exception):
    """The lock could not be taken; the message says why."""


class AlreadyRunning(InstanceLockError):
    """Another process holds the lock; the message names its PID and the lock file."""

    def __init__(self, lock_path: Path, holder_pid: int | None, guards: str):
        self.lock_path = lock_path
        self.holder_pid = holder_pid
        who = f"PID {holder_pid}" if holder_pid is not None else "a process whose PID it has not yet written"
        super().__init__(f"another barrierd ({who}) is running on {guards}: it holds {lock_path}")


def state_lock_path(state_dir: Path) -> Path:
    return state_dir / STATE_LOCK_NAME


def socket_lock_path(socket_path: Path) -> Path:
    return socket_path.with_name(socket_path.name + ".lock")


class InstanceLock:
    """An exclusive, non-blocking flock on `path`, which then holds this process's PID. The kernel drops
    it when the process ends, however it ends; the file itself is left in place (unlinking a lock file
    lets a third process lock a new inode while a second still holds the old one)."""

    def __init__(self, path: Path, guards: str):
        self.path = path
        self.guards = guards
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock, or raise AlreadyRunning. On a full or read-only disk an existing lock file is still
        locked (read-only if need be) without the PID; with no file to lock, a warning and no lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open()
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, holder, self.guards) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS | {errno.EBADF, errno.EINVAL}:  # EBADF/EINVAL: read-only fd
                raise
            log.warning("instance_lock_pid_not_written", path=str(self.path), error=exc.strerror)

    def _open(self) -> int | None:
        # 0600 and no symlink followed: nobody else can open it to take the lock first, nor point it at a file
        flags = os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | flags, 0o600)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise InstanceLockError(f"cannot open the lock file {self.path} ({self.guards}): {exc.strerror}") from exc
            error = exc.strerror
        try:
            return os.open(self.path, os.O_RDONLY | flags)  # flock works on a read-only descriptor too
        except FileNotFoundError:
            log.warning("instance_lock_unavailable", path=str(self.path), guards=self.guards, error=error)
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # read-only or full: the flock goes anyway
            os.ftruncate(self._fd, 0)  # a stale file names nobody
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def single_instance(state_dir: Path, socket_path: Path) -> Iterator[None]:
    """Hold the state directory's lock and the socket's lock for the block; AlreadyRunning if either is held."""
    with contextlib.ExitStack() as held:
        for path, guards in ((state_lock_path(state_dir), f"state directory {state_dir}"),
                             (socket_lock_path(socket_path), f"socket {socket_path}")):
            lock = InstanceLock(path, guards)
            lock.acquire()
            held.callback(lock.release)
        yield
