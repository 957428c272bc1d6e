"""The instance lock: one holder at a time, the holder's PID named to the next, gone with the holder."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from controller import instance_lock
from controller.instance_lock import (
    AlreadyRunning,
    InstanceLock,
    InstanceLockError,
    single_instance,
    socket_lock_path,
    state_lock_path,
)

HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def other_holder(tmp_path):
    """Another process holding the flock on a path, until the test ends."""
    procs = []

    def hold(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "held\n"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_the_holder_writes_its_pid_and_a_second_lock_is_refused_naming_it(tmp_path):
    first = InstanceLock(tmp_path / "barrierd.lock", "state directory x")
    first.acquire()
    assert (tmp_path / "barrierd.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(AlreadyRunning) as refused:
        InstanceLock(tmp_path / "barrierd.lock", "state directory x").acquire()
    assert refused.value.holder_pid == os.getpid()
    assert f"PID {os.getpid()}" in str(refused.value) and str(tmp_path / "barrierd.lock") in str(refused.value)
    first.release()


def test_released_the_lock_can_be_taken_again_and_the_file_names_nobody(tmp_path):
    lock = InstanceLock(tmp_path / "barrierd.lock", "x")
    lock.acquire()
    lock.release()
    assert (tmp_path / "barrierd.lock").read_text() == ""
    again = InstanceLock(tmp_path / "barrierd.lock", "x")
    again.acquire()
    again.release()


def test_a_lock_held_by_another_process_names_that_process(tmp_path, other_holder):
    holder = other_holder(tmp_path / "barrierd.lock")
    with pytest.raises(AlreadyRunning) as refused:
        InstanceLock(tmp_path / "barrierd.lock", "x").acquire()
    assert refused.value.holder_pid == holder.pid


def test_a_lock_whose_holder_ended_is_free(tmp_path, other_holder):
    holder = other_holder(tmp_path / "barrierd.lock")
    holder.kill()
    holder.wait(timeout=10)
    lock = InstanceLock(tmp_path / "barrierd.lock", "x")
    lock.acquire()  # the stale file still names the dead PID; the kernel freed its lock
    assert (tmp_path / "barrierd.lock").read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_symlink_in_place_of_the_lock_file_is_not_followed(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    (tmp_path / "barrierd.lock").symlink_to(target)
    with pytest.raises(InstanceLockError):
        InstanceLock(tmp_path / "barrierd.lock", "x").acquire()
    assert target.read_text() == "keep me"


def test_single_instance_refuses_either_lock_and_names_what_it_guards(tmp_path, other_holder):
    state, sock = tmp_path / "state", tmp_path / "run" / "barrierd.sock"
    holder = other_holder(socket_lock_path(sock))
    with pytest.raises(AlreadyRunning) as refused, single_instance(state, sock):
        pass
    assert f"PID {holder.pid}" in str(refused.value) and f"socket {sock}" in str(refused.value)
    with single_instance(tmp_path / "state", tmp_path / "elsewhere.sock"):  # the state lock was let go
        with pytest.raises(AlreadyRunning) as refused, single_instance(state, tmp_path / "third.sock"):
            pass
        assert "state directory" in str(refused.value) and str(state_lock_path(state)) in str(refused.value)


def test_a_full_disk_still_locks_without_the_pid(tmp_path, monkeypatch):
    def no_space(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(instance_lock.os, "pwrite", no_space)
    lock = InstanceLock(tmp_path / "barrierd.lock", "x")
    lock.acquire()
    with pytest.raises(AlreadyRunning) as refused:
        InstanceLock(tmp_path / "barrierd.lock", "x").acquire()
    assert refused.value.holder_pid is None and "has not yet written" in str(refused.value)
    lock.release()


def test_a_read_only_disk_locks_the_existing_file_read_only(tmp_path, monkeypatch):
    (tmp_path / "barrierd.lock").write_text("")
    real_open = os.open

    def read_only_fs(path, flags, *mode):
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *mode)

    monkeypatch.setattr(instance_lock.os, "open", read_only_fs)
    lock = InstanceLock(tmp_path / "barrierd.lock", "x")
    lock.acquire()
    monkeypatch.undo()
    with pytest.raises(AlreadyRunning):
        InstanceLock(tmp_path / "barrierd.lock", "x").acquire()
    lock.release()


def test_a_read_only_disk_without_a_lock_file_goes_on_without_that_lock(tmp_path, monkeypatch):
    def read_only_fs(path, flags, *mode):
        raise OSError(errno.EROFS, "Read-only file system") if flags & os.O_CREAT else FileNotFoundError(path)

    monkeypatch.setattr(instance_lock.os, "open", read_only_fs)
    lock = InstanceLock(tmp_path / "barrierd.lock", "x")
    lock.acquire()  # supervision must not wait for a writable disk
    lock.release()
