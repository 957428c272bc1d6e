"""config.child_loader: the site validated in a forked child is the site load_site gives, its refusal the same
refusal; a child that cannot start, dies, fails or hangs is SiteCheckFailed (the file not judged: barrierd exits 1,
which systemd restarts, where a refused file exits 2); the calling process never imports pydantic."""

from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from config import ConfigError
from config.child_loader import SiteCheck, SiteCheckFailed, load_site_in_child
from config.loader import load_site
from tests.support import DEMO_SITE, REPO

SITE_FILES = sorted((REPO / "config").rglob("*.toml"))


@pytest.mark.parametrize("path", SITE_FILES, ids=[p.name for p in SITE_FILES])
def test_a_bundled_site_checked_in_a_child_is_the_site_load_site_gives(path):
    assert load_site_in_child(path) == load_site(path)


def test_a_broken_site_is_refused_with_the_same_problems_as_load_site(tmp_path):
    text = DEMO_SITE.read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace("[site]\n", '[site]\ncolour = "red"\n', 1).replace("slot = 1", 'slot = "1"', 1))
    with pytest.raises(ConfigError) as in_process:
        load_site(broken)
    with pytest.raises(ConfigError) as in_child:
        load_site_in_child(broken)
    assert in_child.value.path == str(broken)
    assert in_child.value.problems == in_process.value.problems and len(in_child.value.problems) == 2
    assert str(in_child.value) == str(in_process.value)


def test_a_missing_file_is_refused_as_load_site_refuses_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_site_in_child(tmp_path / "nowhere.toml")
    assert info.value.problems[0][0] == "(file)" and "no such file" in str(info.value).lower()


def _dies(path: Path):
    os.kill(os.getpid(), signal.SIGKILL)


def _fails(path: Path):
    raise RuntimeError("a fault in the check itself")


def _hangs(pid_file: Path, path: Path):
    pid_file.write_text(str(os.getpid()))
    select.select([], [], [])  # never returns


def test_a_child_that_dies_is_a_failed_check_naming_how(tmp_path):
    with pytest.raises(SiteCheckFailed) as info:
        load_site_in_child(DEMO_SITE, load=_dies)
    assert str(info.value) == f"{DEMO_SITE}: the check of this file ended without an answer (killed by signal 9, Killed)"


def test_a_child_that_fails_is_a_failed_check_and_its_traceback_is_on_stderr(capfd):
    with pytest.raises(SiteCheckFailed) as info:
        load_site_in_child(DEMO_SITE, load=_fails)
    assert str(info.value) == f"{DEMO_SITE}: the check of this file ended without an answer (exit status 1)"
    assert "RuntimeError: a fault in the check itself" in capfd.readouterr().err


def test_a_child_that_hangs_is_killed_at_the_deadline(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(SiteCheckFailed) as info:
        load_site_in_child(DEMO_SITE, load=functools.partial(_hangs, pid_file), deadline_s=0.5)
    assert str(info.value) == f"{DEMO_SITE}: the check of this file did not finish within 0.5 s"
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_the_calling_process_never_imports_pydantic():
    code = ("import sys; from config.child_loader import load_site_in_child; "
            f"site = load_site_in_child({str(DEMO_SITE)!r}); "
            "print(site.site.name, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'pydantic_core') or m == 'config.loader'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.split() == [tomllib.loads(DEMO_SITE.read_text())["site"]["name"], "[]"]


@pytest.mark.parametrize("load", [_dies, _fails, functools.partial(_hangs, Path(os.devnull))],
                         ids=["dies", "fails", "hangs"])
def test_barrierd_exits_1_when_the_check_dies_fails_or_hangs_and_starts_nothing(monkeypatch, capsys, tmp_path, load):
    from controller import daemon, serve

    def serve_must_not_run(coroutine):
        coroutine.close()
        raise AssertionError("barrierd started serving")

    monkeypatch.setattr(serve, "configure_logging", lambda level: None)
    monkeypatch.setattr(serve.event_loop, "run", serve_must_not_run)
    monkeypatch.setattr(daemon, "SiteCheck", functools.partial(SiteCheck, load=load, deadline_s=1))
    state = tmp_path / "state"
    assert daemon.main(["--config", str(DEMO_SITE), "--socket", str(tmp_path / "s.sock"),
                        "--state-dir", str(state)]) == daemon.EXIT_CHECK_FAILED == 1
    err = capsys.readouterr().err
    assert err.startswith(f"barrierd: {DEMO_SITE}: the check of this file ") and err.endswith("; nothing started\n")
    assert "refused" not in err  # the file was not judged: systemd's RestartPreventExitStatus=2 must not apply
    assert not state.exists() and not (tmp_path / "s.sock").exists()


def test_an_answer_waiting_in_the_pipe_is_taken_even_after_the_deadline():
    check = SiteCheck(DEMO_SITE, deadline_s=0.05)
    os.waitid(os.P_PID, check._pid, os.WEXITED | os.WNOWAIT)  # noqa: SLF001 - the child answered and exited
    late = check._deadline - time.monotonic()  # noqa: SLF001
    if late > 0:
        select.select([], [], [], late)  # the caller comes for the answer after the deadline
    assert check.result() == load_site(DEMO_SITE)


def test_an_ignored_sigchld_inherited_from_the_caller_does_not_break_the_check():
    code = ("import signal; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
            "from config.child_loader import load_site_in_child; "
            f"print(load_site_in_child({str(DEMO_SITE)!r}).site.name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, tomllib.loads(DEMO_SITE.read_text())["site"]["name"]), done.stderr


def test_a_fork_that_fails_is_a_failed_check_and_leaves_no_descriptor(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(SiteCheckFailed, match="cannot start the check of this file: .*Resource temporarily"):
        SiteCheck(DEMO_SITE)
    assert set(os.listdir("/proc/self/fd")) <= before
