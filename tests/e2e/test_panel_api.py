"""End to end: the panel's login and command API over real HTTP, with real Unix users checked by PAM."""

from __future__ import annotations

import sqlite3

import pytest

from tests.e2e.panel_rig import PanelClient, logged_in, start_panel_site

pytestmark = pytest.mark.e2e


@pytest.fixture
def panel(tmp_path, users):
    procs, url = start_panel_site(tmp_path, users)
    yield procs, url
    procs.close()


def command_rows(procs) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT user, role, command, args, outcome FROM commands ORDER BY id").fetchall()


def panel_events(procs) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT subject, summary FROM events WHERE kind = 'panel' ORDER BY id").fetchall()


def test_a_guard_logs_in_commands_and_the_command_is_recorded_with_the_guard(panel, users):
    procs, url = panel
    client = PanelClient(url)
    guard = users.names["operator"]
    answer = client.login(guard, users.passwords[guard])
    assert answer.status == 200 and answer.body["role"] == "operator" and len(answer.body["csrf"]) >= 32
    assert answer.body["reading_needs_login"] is False  # on loopback anyone on this PC reads
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie, cookie
    assert client.request("GET", "/api/session").body["user"] == guard

    reply = client.command("open", device="gate-1")
    assert reply.status == 200 and reply.body["exit"] == 0, reply.body
    assert set(reply.body) == {"exit", "outcome", "message", "data"}  # the control socket's reply
    assert (guard, "operator", "open", '{"device": "gate-1"}', "done") in command_rows(procs)
    assert (guard, "logged in on the panel as operator") in panel_events(procs)
    assert [w for w in procs.writes() if w["plc"] == "plc-lane-1" and w["fc"] == 16]  # the command reached the PLC

    refused = client.command("lane_open", lane="lane-1")  # lane-1 is mixed now: the rule in words
    assert refused.status == 200 and refused.body["exit"] == 3 and "secured" in refused.body["message"]

    assert client.request("POST", "/api/logout", {}).status == 200
    assert client.command("close", device="gate-1").status == 401
    assert (guard, "logged out of the panel") in panel_events(procs)


def test_refused_without_login_with_a_wrong_role_without_csrf_and_from_another_origin(panel, users):
    procs, url = panel
    anonymous = PanelClient(url)
    assert anonymous.command("open", device="gate-1").status == 401

    viewer = logged_in(url, users, "viewer")
    refused = viewer.command("open", device="gate-1")
    assert refused.status == 403 and refused.body["exit"] == 4 and "needs role operator" in refused.body["message"]
    assert logged_in(url, users, "operator").command("lockdown_release", reason="x").body["exit"] == 4

    nobody = users.names["none"]
    no_role = PanelClient(url).login(nobody, users.passwords[nobody])
    assert no_role.status == 403 and "no role" in no_role.body["error"]

    guard = logged_in(url, users, "operator")
    token, guard.csrf = guard.csrf, None
    assert guard.command("open", device="gate-1").status == 403
    guard.csrf = "x" * len(token)
    assert guard.command("open", device="gate-1").status == 403
    guard.csrf = token
    foreign = guard.request("POST", "/api/command", {"command": "open", "args": {"device": "gate-1"}},
                            headers={"Origin": "http://attacker.example"})
    assert foreign.status == 403 and "Origin" in foreign.body["error"]
    assert guard.request("POST", "/api/login", {"user": nobody, "password": "x"},
                         headers={"Origin": "null"}).status == 403

    opened = [row for row in command_rows(procs) if row[2] == "open" and row[4] == "done"]
    assert opened == [] and procs.device("gate-1")["state"] == "closed"
    own = guard.request("POST", "/api/command", {"command": "status", "args": {}}, headers={"Origin": url.rstrip("/")})
    assert own.status == 200 and own.body["exit"] == 0


def test_a_wrong_password_is_refused_and_audited(panel, users):
    procs, url = panel
    guard = users.names["operator"]
    answer = PanelClient(url).login(guard, "not-" + users.passwords[guard])
    assert answer.status == 401 and answer.body == {"error": "wrong user or password"}
    assert (guard, "login refused: wrong user or password") in panel_events(procs)


BAD_COMMANDS = {
    "oversized": (b'{"command": "open", "args": {"device": "' + b"g" * 20_000 + b'"}}', "application/json", 413),
    "not JSON": (b'{"command": "open", ', "application/json", 400),
    "not UTF-8": (b'{"command": "open\xff", "args": {}}', "application/json", 400),
    "too deep": (b'{"command": "open", "args": {"a": ' + b"[" * 20 + b"]" * 20 + b"}}", "application/json", 400),
    "huge integer": (b'{"command": "ack", "args": {"alarm": 1' + b"0" * 30 + b"}}", "application/json", 400),
    "NaN": (b'{"command": "ack", "args": {"alarm": NaN}}', "application/json", 400),
    "an array": (b'[1, 2]', "application/json", 400),
    "a form": (b"command=open&device=gate-1", "application/x-www-form-urlencoded", 415),
}


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(panel, users):
    procs, url = panel
    guard = logged_in(url, users, "operator")
    before = (len(command_rows(procs)), len(procs.writes()))
    for what, (raw, content_type, status) in BAD_COMMANDS.items():
        answer = guard.request("POST", "/api/command", raw=raw, content_type=content_type)
        assert answer.status == status, (what, answer.status, answer.body)
        assert answer.body.get("error"), what
    for bad_login in ({"user": "x"}, {"user": "../etc", "password": "p"}, {"user": "a", "password": "p" * 2000}):
        assert PanelClient(url).request("POST", "/api/login", bad_login).status == 400, bad_login
    assert (len(command_rows(procs)), len(procs.writes())) == before
    assert guard.command("status").status == 200  # the session is still good
