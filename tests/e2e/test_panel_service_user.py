"""End to end: barrierd as its systemd unit runs it (system user, the unit's groups, no privileges) checks logins."""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.harness import BIN, Processes
from tests.e2e.panel_rig import PanelClient, panel_site_file
from tests.support import REPO, free_port

pytestmark = pytest.mark.e2e

UNIT = REPO / "deploy" / "barrierd.service"


def unit_settings() -> dict[str, list[str]]:
    """The [Service] settings of the unit, each with every word of every line that sets it."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).extend(value.split())
    return settings


SERVICE = unit_settings()


@pytest.fixture(scope="module")
def service_user():
    """A system user standing in for the unit's User= (its own group, like Group=), removed after."""
    assert SERVICE["User"] == ["barrierd"] and SERVICE["NoNewPrivileges"] == ["yes"]
    name = f"bd{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], check=False, capture_output=True)


def as_service_user(user: pwd.struct_passwd, groups: list[str]) -> list[str]:
    """setpriv doing what systemd does for the unit: User=, Group=, SupplementaryGroups=, NoNewPrivileges=yes and
    an empty CapabilityBoundingSet=."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
            f"--groups={','.join(groups)}" if groups else "--clear-groups",
            "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"]


@pytest.fixture
def start_as_service(service_user, users, monkeypatch):
    """Start sim-plc (root) and barrierd as the service user with `groups`, its state directory and socket in a
    directory it owns; the panel's URL."""
    started: list[tuple[Processes, Path]] = []
    monkeypatch.setenv("BARRIERD_USER", service_user.pw_name)  # barrierctl trusts the socket of barrierd's user

    def start(groups: list[str]) -> tuple[Processes, str]:
        home = Path(tempfile.mkdtemp(prefix="barrierd-service-"))  # not under pytest's root-only 0700 tmp
        state = home / "state"
        state.mkdir(mode=0o700)  # StateDirectoryMode=0700
        for path in (home, state):
            os.chown(path, service_user.pw_uid, service_user.pw_gid)
        port = free_port()
        procs = Processes(tmp=home, site=panel_site_file(home, users, port),
                          run_daemon_as=as_service_user(service_user, groups))
        started.append((procs, home))
        procs.start_sim()
        procs.start_daemon()
        return procs, f"http://127.0.0.1:{port}/"

    yield start
    for procs, home in started:
        procs.close()
        shutil.rmtree(home, ignore_errors=True)


def panel_events(procs: Processes) -> list[tuple[str, str]]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT subject, summary FROM events WHERE kind = 'panel' ORDER BY id").fetchall()


def process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_with_the_units_groups_a_guard_logs_in_and_commands(start_as_service, service_user, users):
    groups = SERVICE["SupplementaryGroups"]
    assert "shadow" in groups
    procs, url = start_as_service(groups)
    daemon = process_status(procs.daemon.pid)
    assert daemon["Uid"].split()[1] == str(service_user.pw_uid) and daemon["NoNewPrivs"] == "1"
    assert str(grp.getgrnam("shadow").gr_gid) in daemon["Groups"].split() and int(daemon["CapEff"], 16) == 0
    assert procs.socket.stat().st_uid == service_user.pw_uid and procs.event_db.stat().st_uid == service_user.pw_uid

    guard = users.names["operator"]
    assert PanelClient(url).login(guard, "not-" + users.passwords[guard]).status == 401  # PAM checks, not waves through
    client = PanelClient(url)
    answer = client.login(guard, users.passwords[guard])
    assert answer.status == 200 and answer.body["role"] == "operator", answer.body
    reply = client.command("open", device="gate-1")
    assert reply.status == 200 and reply.body["exit"] == 0, reply.body
    assert [w for w in procs.writes() if w["plc"] == "plc-lane-1" and w["fc"] == 16]  # it reached the PLC
    assert panel_events(procs) == [(guard, "login refused: wrong user or password"),
                                   (guard, "logged in on the panel as operator")]


def test_without_the_shadow_group_a_login_answers_503_and_the_cause_is_recorded_once(start_as_service, users):
    procs, url = start_as_service([g for g in SERVICE["SupplementaryGroups"] if g != "shadow"])
    guard = users.names["operator"]
    for _ in range(2):
        answer = PanelClient(url).login(guard, users.passwords[guard])
        assert answer.status == 503, answer.body
        assert answer.body["error"].startswith("the site PC could not check passwords")
    events = panel_events(procs)
    assert len(events) == 1 and events[0][0] == users.pam_service, events
    assert "PAM_AUTHINFO_UNAVAIL" in events[0][1] and "cannot read /etc/shadow" in events[0][1]
    assert procs.daemon.poll() is None and procs.ctl("status")[0] == 0  # supervision goes on
    assert procs.daemon_log().count("panel_passwords_uncheckable") == 1  # logged once too


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("systemd-analyze") is None,
                    reason="needs strace and systemd-analyze")
def test_pam_unix_makes_only_system_calls_the_units_filter_allows_and_writes_nothing(service_user, users, tmp_path):
    """What systemd's SystemCallFilter, RestrictAddressFamilies, ProtectSystem and ProtectHome would refuse, seen
    by tracing one password check as the service user (every socket refused, stricter than the unit)."""
    guard = users.names["operator"]
    check = (f"from controller.panel_auth import pam_password_ok; "
             f"assert pam_password_ok({users.pam_service!r}, {guard!r}, {users.passwords[guard]!r}) is None")
    trace = tmp_path / "pam.strace"
    subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "inject=socket:error=EAFNOSUPPORT",
                    *as_service_user(service_user, SERVICE["SupplementaryGroups"]), str(BIN / "python"), "-c", check],
                   check=True, cwd=REPO, timeout=60)
    lines = trace.read_text().splitlines()
    during = lines[next(i for i, line in enumerate(lines) if f"/etc/pam.d/{users.pam_service}" in line):]
    called = {m.group(1) for line in during if (m := re.match(r"\d+ +([a-z_0-9]+)\(", line))}
    allowed = set()
    denied = set()
    for entry in SERVICE["SystemCallFilter"]:
        (denied if entry.startswith("~") else allowed).update(syscalls(entry.lstrip("~")))
    assert called and called <= allowed - denied, sorted(called - (allowed - denied))
    opened = [line for line in during if "openat(" in line and '"/dev/null"' not in line]  # DevicePolicy allows it
    assert any('"/etc/shadow", O_RDONLY' in line and "= -1" not in line for line in opened)
    assert not [line for line in opened if any(w in line for w in ("O_WRONLY", "O_RDWR", "O_CREAT", "/home", "/root"))]


def syscalls(group: str) -> set[str]:
    """The system calls systemd puts in a group, nested groups expanded."""
    if not group.startswith("@"):
        return {group}
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
                         check=True).stdout
    names = [line.strip() for line in out.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
    return set().union(*(syscalls(name) for name in names))
