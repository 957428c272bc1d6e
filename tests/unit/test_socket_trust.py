"""barrierctl sends nothing to a path that is not a socket, or whose owner or listener is not barrierd's."""

from __future__ import annotations

import os
import socket

import pytest

from controller.cli import DaemonUnreachable, request
from controller.socket_trust import UntrustedSocket, check_listener, check_socket_file, trusted_uids

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


@pytest.fixture
def listener(tmp_path):
    """A listening Unix socket at tmp_path/barrierd.sock, made by this (root) process."""
    path = tmp_path / "barrierd.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    server.setblocking(False)
    yield path, server
    server.close()


def no_connection_arrived(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_a_socket_owned_by_another_user_is_refused_naming_the_owner(listener):
    path, server = listener
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(UntrustedSocket) as refused:
        check_socket_file(path)
    assert "uid 65534 (nobody)" in str(refused.value)
    with pytest.raises(DaemonUnreachable) as unreachable:
        request(path, "open", {"device": "gate-1"})
    assert "uid 65534" in str(unreachable.value) and "nothing was sent" in str(unreachable.value)
    assert no_connection_arrived(server)


def test_the_daemons_configured_user_is_trusted(listener, monkeypatch):
    path, _ = listener
    os.chown(path, NOBODY, NOBODY)
    monkeypatch.setenv("BARRIERD_USER", "nobody")
    assert NOBODY in trusted_uids()
    check_socket_file(path)


def test_a_socket_owned_by_root_or_the_caller_is_accepted(listener):
    path, _ = listener
    check_socket_file(path)


def test_a_symlink_to_a_socket_is_refused(listener, tmp_path):
    path, server = listener
    (tmp_path / "link.sock").symlink_to(path)
    with pytest.raises(DaemonUnreachable) as refused:
        request(tmp_path / "link.sock", "status")
    assert "symbolic link" in str(refused.value)
    assert no_connection_arrived(server)


def test_a_regular_file_is_refused(tmp_path):
    (tmp_path / "barrierd.sock").write_text("")
    with pytest.raises(UntrustedSocket, match="not a socket"):
        check_socket_file(tmp_path / "barrierd.sock")


def test_a_missing_socket_still_reads_as_not_running(tmp_path):
    with pytest.raises(DaemonUnreachable, match="not running"):
        request(tmp_path / "barrierd.sock", "status")


def test_a_listener_running_as_another_user_is_refused_though_the_file_is_roots(tmp_path):
    """The path may be swapped between the owner check and connect: the kernel's word on the listener decides."""
    path = tmp_path / "barrierd.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))  # root's file; the listen() below is nobody's
    listening_r, listening_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the child: become nobody, listen, wait for the parent
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            bound.listen()
            os.write(listening_w, b"x")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(listening_r, 1) == b"x"
        check_socket_file(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            with pytest.raises(UntrustedSocket) as refused:
                check_listener(client, path)
        assert f"pid {child}" in str(refused.value) and "uid 65534" in str(refused.value)
    finally:
        os.write(done_w, b"x")
        os.waitpid(child, 0)
        for fd in (listening_r, listening_w, done_r, done_w):
            os.close(fd)
        bound.close()
