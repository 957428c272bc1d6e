"""End to end: panel sessions at their bounds: idle expiry, and the failed-login limit with real PAM."""

from __future__ import annotations

import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.panel_rig import PanelClient, logged_in, start_panel_site
from tests.support import wait_until

pytestmark = pytest.mark.e2e

IDLE_S = 3
FAILURES_PER_USER = 5  # README: a user name with 5 failed logins in 5 minutes is refused (429)


@pytest.fixture
def panel(tmp_path, users):
    procs, url = start_panel_site(tmp_path, users, extra=f"idle_timeout_s = {IDLE_S}\n")
    yield procs, url
    procs.close()


def panel_events(procs) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT subject, summary FROM events WHERE kind = 'panel' ORDER BY id").fetchall()


def commands_by(procs, user: str) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT command, outcome FROM commands WHERE user = ?", (user,)).fetchall()


def alive(client: PanelClient) -> bool:
    return client.request("GET", "/api/session").status == 200  # asking does not restart the idle time


def test_an_idle_session_ends_and_its_cookie_and_token_no_longer_act_while_a_used_one_lives(panel, users):
    procs, url = panel
    busy, idle = logged_in(url, users, "operator"), logged_in(url, users, "technician")
    logged_in_at = time.monotonic()
    logged_in(url, users, "viewer")  # left alone: nobody sends its cookie again, the panel's sweep ends it
    alive_late = False  # the idle session still answered 2 s after login: it did not end early

    def idle_one_ended() -> bool:
        nonlocal alive_late
        assert busy.command("status").status == 200  # a command every 0.2 s keeps its session
        asked_at = time.monotonic()
        if alive(idle):
            alive_late |= asked_at - logged_in_at >= IDLE_S - 1
            return False
        return True

    wait_until(idle_one_ended, IDLE_S + 2, "the idle session ended", step_s=0.2)
    assert alive_late, "the idle session ended before its idle time"
    assert alive(busy), "a session in use ended"

    writes = len(procs.writes())
    refused = idle.command("open", device="gate-1")  # the old cookie and CSRF token, both sent
    assert refused.status == 401 and "log in" in refused.body["error"], refused.body
    assert idle.request("GET", "/api/session").status == 401
    assert commands_by(procs, users.names["technician"]) == [] and len(procs.writes()) == writes

    last_command = time.monotonic()
    assert busy.command("status").status == 200
    wait_until(lambda: not alive(busy), IDLE_S + 2, "the busy session ended once left idle", step_s=0.2)
    assert time.monotonic() - last_command >= IDLE_S, "ended before its idle time"
    assert busy.command("close", device="gate-1").status == 401
    assert commands_by(procs, users.names["operator"]) == []  # the close was not dispatched (status is not recorded)

    ended = f"session ended: idle for {IDLE_S} s"
    events = panel_events(procs)
    for role in ("viewer", "technician", "operator"):  # once each, however often an ended cookie came back
        assert events.count((users.names[role], ended)) == 1, (role, events)


def login_burst(url: str, attempts: list[tuple[str, str]]) -> list[tuple[str, int, dict]]:
    """Every login at once, each from its own client: (user, status, body) in the order given."""
    def one(attempt):
        answer = PanelClient(url).login(*attempt)
        return attempt[0], answer.status, answer.body
    with ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(one, attempts))


def test_five_wrong_passwords_then_even_the_right_one_is_refused_and_other_users_still_log_in(panel, users):
    procs, url = panel
    guard, stranger = users.names["operator"], f"nosuch{secrets.token_hex(3)}"  # no such Unix user
    burst = login_burst(url, [(name, "wrong-" + secrets.token_hex(4)) for name in (guard, stranger) for _ in range(10)])
    for name in (guard, stranger):  # sent together: the limit still holds (attempts count from when they are made)
        answers = sorted((status, body["error"]) for user, status, body in burst if user == name)
        limited = f"too many failed logins for {name} ({FAILURES_PER_USER} in 300 s); try later"
        assert answers == [(401, "wrong user or password")] * 5 + [(429, limited)] * 5, answers

    right = PanelClient(url).login(guard, users.passwords[guard])
    assert right.status == 429 and "too many failed logins" in right.body["error"] and "csrf" not in right.body
    assert "Set-Cookie" not in right.headers
    assert logged_in(url, users, "technician").command("status").status == 200  # another user is not held back

    events = panel_events(procs)
    for name in (guard, stranger):
        assert events.count((name, "login refused: wrong user or password")) == FAILURES_PER_USER, events
        assert events.count((name, "login refused: too many failed logins")) == 1, events  # once while limited


def test_a_wrong_password_answers_alike_whether_or_not_the_user_exists(panel, users):
    procs, url = panel
    viewer, stranger = users.names["viewer"], f"nosuch{secrets.token_hex(3)}"
    answers = [PanelClient(url).login(name, "wrong-" + secrets.token_hex(4)) for name in (viewer, stranger)]
    assert [(a.status, a.body) for a in answers] == [(401, {"error": "wrong user or password"})] * 2
    assert {k for k in answers[0].headers if k.lower() != "date"} == {k for k in answers[1].headers if k.lower() != "date"}
    assert {(viewer, "login refused: wrong user or password"),
            (stranger, "login refused: wrong user or password")} <= set(panel_events(procs))
    assert logged_in(url, users, "viewer").request("GET", "/api/session").body["user"] == viewer
