"""Default control socket: only in the system daemon's directory or the user's private runtime directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller import cli, paths
from controller.paths import SYSTEM_SOCKET, NoDefaultSocket, default_socket


@pytest.fixture
def as_user(monkeypatch):
    """A non-root user on a host without a system barrierd and with no socket variables set."""
    for name in ("BARRIERD_SOCKET", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(paths, "_system_daemon_present", lambda: False)
    return monkeypatch


def test_without_a_runtime_directory_there_is_no_default_and_the_message_says_what_to_set(as_user):
    with pytest.raises(NoDefaultSocket) as refused:
        default_socket()
    assert "--socket" in str(refused.value) and "BARRIERD_SOCKET" in str(refused.value)
    assert "XDG_RUNTIME_DIR" in str(refused.value)


def test_never_a_path_under_tmp(as_user):
    as_user.setenv("XDG_RUNTIME_DIR", "")
    with pytest.raises(NoDefaultSocket):
        default_socket()


def test_a_relative_xdg_runtime_dir_is_not_used(as_user):
    as_user.setenv("XDG_RUNTIME_DIR", "run/user")
    with pytest.raises(NoDefaultSocket):
        default_socket()


def test_the_users_runtime_directory(as_user):
    as_user.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_socket() == Path("/run/user/1000/barrierd.sock")


def test_the_system_socket_when_the_system_daemons_directory_exists(as_user):
    as_user.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user.setattr(paths, "_system_daemon_present", lambda: True)
    assert default_socket() == SYSTEM_SOCKET


def test_the_system_socket_for_root(as_user):
    as_user.setattr(paths.os, "geteuid", lambda: 0)
    assert default_socket() == SYSTEM_SOCKET


def test_an_explicit_socket_and_systemds_runtime_directory_come_first(as_user):
    as_user.setenv("RUNTIME_DIRECTORY", "/run/barrierd")
    assert default_socket() == Path("/run/barrierd/barrierd.sock")
    as_user.setenv("BARRIERD_SOCKET", "/srv/crossing/ctl.sock")
    assert default_socket() == Path("/srv/crossing/ctl.sock")


def test_barrierctl_without_a_default_socket_exits_5_saying_what_to_set(as_user, capsys):
    assert cli.main(["status"]) == 5
    err = capsys.readouterr().err
    assert "--socket" in err and "XDG_RUNTIME_DIR" in err and "/tmp" not in err


def test_barrierd_without_a_default_socket_exits_2_and_starts_nothing(as_user, capsys, tmp_path):
    from controller import daemon, serve

    def serve_must_not_run(coroutine):
        coroutine.close()
        raise AssertionError("barrierd started serving")

    as_user.setattr(serve, "configure_logging", lambda level: None)
    as_user.setattr(serve.event_loop, "run", serve_must_not_run)
    demo = Path(__file__).resolve().parents[2] / "config" / "sites" / "demo.toml"
    assert daemon.main(["--config", str(demo), "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert "--socket" in err and "nothing started" in err
    assert not (tmp_path / "state").exists()
