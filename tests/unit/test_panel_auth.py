"""The panel's sessions, failed-login limit, login shape and [panel] section, on a fake clock."""

from __future__ import annotations

import pytest

from config import ConfigError
from config.loader import load_site
from controller.panel_auth import MAX_SESSIONS, LoginLimiter, Sessions, login_problem
from tests.support import DEMO_SITE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_unused_for_the_idle_time_is_gone_and_a_command_restarts_the_clock():
    clock = FakeClock()
    sessions = Sessions(idle_s=600, clock=clock)
    session = sessions.open("guard", 1001, 1001)
    clock.now += 599
    assert sessions.get(session.token) is session  # reading does not restart the idle clock
    assert sessions.idle_left(session) == 1
    sessions.touch(session)
    clock.now += 599
    assert sessions.get(session.token) is session
    clock.now += 2
    assert sessions.get(session.token) is None
    assert sessions.get(session.token) is None and session.token not in sessions.by_token


def test_an_idle_end_is_told_once_per_session_whether_a_sweep_or_a_request_notices_it():
    clock, ended = FakeClock(), []
    sessions = Sessions(idle_s=60, clock=clock, on_idle_end=lambda s, idle_for: ended.append((s.user, idle_for)))
    assert sessions.next_end() is None
    guard = sessions.open("guard", 1001, 1001)
    clock.now += 10
    tech = sessions.open("tech", 1002, 1002)
    assert sessions.next_end() == guard.last_used + 60
    clock.now += 49.5
    sessions.end_idle()
    assert ended == [] and sessions.get(guard.token) is guard
    clock.now += 0.5  # guard idle for exactly 60 s: ended by the sweep
    sessions.touch(tech)
    sessions.end_idle()
    sessions.end_idle()
    assert ended == [("guard", 60.0)] and sessions.get(guard.token) is None and ended == [("guard", 60.0)]
    assert sessions.next_end() == clock.now + 60
    clock.now += 75  # no sweep ran: the next request with tech's cookie notices it, and a later sweep does not again
    assert sessions.get(tech.token) is None
    sessions.end_idle()
    assert ended == [("guard", 60.0), ("tech", 75.0)] and sessions.next_end() is None
    closed = sessions.open("guard", 1001, 1001)
    assert sessions.close(closed.token) is closed
    clock.now += 600
    sessions.end_idle()
    assert len(ended) == 2, "a session ended by logout is not ended again as idle"


def test_sessions_are_distinct_bounded_and_closed_on_logout():
    clock = FakeClock()
    sessions = Sessions(idle_s=600, clock=clock)
    first = sessions.open("guard", 1001, 1001)
    assert first.token != first.csrf and len(first.token) >= 32
    for _ in range(MAX_SESSIONS):
        clock.now += 1
        sessions.open("guard", 1001, 1001)
    assert len(sessions.by_token) == MAX_SESSIONS and sessions.get(first.token) is None  # the least recently used
    last = next(reversed(sessions.by_token.values()))
    assert sessions.close(last.token) is last and sessions.get(last.token) is None
    assert sessions.get(None) is None and sessions.get("") is None


def test_the_csrf_token_must_be_sent_exactly():
    session = Sessions(idle_s=600).open("guard", 1001, 1001)
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None) and not session.csrf_matches("") and not session.csrf_matches(session.token)


def test_failed_logins_are_limited_per_user_and_overall_within_the_window():
    clock = FakeClock()
    limiter = LoginLimiter(clock=clock, per_user=3, overall=5, window_s=60)
    for _ in range(3):
        assert limiter.refusal("guard") is None
        limiter.attempt("guard")
    assert "too many failed logins for guard" in limiter.refusal("guard")
    assert limiter.refusal("tech") is None
    limiter.attempt("tech")
    limiter.attempt("tech")
    assert "too many failed logins on this panel" in limiter.refusal("someone")
    assert not limiter.quiet()
    clock.now += 61
    assert limiter.refusal("guard") is None and limiter.refusal("someone") is None
    assert limiter.quiet(), "no failure left in the window: the panel forgets whose refusals it recorded"


def test_a_good_login_forgets_that_users_failures_only():
    limiter = LoginLimiter(clock=FakeClock(), per_user=2)
    for name in ("guard", "guard", "tech", "tech"):
        limiter.attempt(name)
    limiter.succeeded("guard")
    assert limiter.refusal("guard") is None and limiter.refusal("tech") is not None


@pytest.mark.parametrize("body", [
    [], "guard", {"user": "guard"}, {"user": "guard", "password": "pw", "role": "technician"},
    {"user": "Guard", "password": "pw"}, {"user": "../../etc", "password": "pw"}, {"user": "a" * 40, "password": "pw"},
    {"user": "guard", "password": ""}, {"user": "guard", "password": "p\0w"}, {"user": "guard", "password": 5},
    {"user": "guard", "password": "p" * 1025},
])
def test_a_login_body_other_than_a_user_name_and_a_password_is_refused(body):
    assert login_problem(body) is not None


def test_a_login_body_with_a_user_name_and_a_password_is_taken():
    assert login_problem({"user": "guard", "password": "correct horse"}) is None


def site_with_panel(tmp_path, panel: str):
    path = tmp_path / "site.toml"
    path.write_text(DEMO_SITE.read_text() + "\n[panel]\n" + panel)
    return path


def test_the_panel_is_on_loopback_with_a_ten_minute_idle_time_by_default(tmp_path):
    panel = load_site(site_with_panel(tmp_path, "")).panel
    assert panel.host == "127.0.0.1" and panel.idle_timeout_s == 600 and not panel.tls


@pytest.mark.parametrize("panel, problem", [
    ('host = "0.0.0.0"\n', "loopback address only"),
    ('host = "192.0.2.10"\ntls_cert_file = "/etc/barrierd/panel.pem"\n', "loopback address only"),
    ('tls_cert_file = "/etc/barrierd/panel.pem"\n', "go together"),
    ('host = "192.0.2.10"\ntls_key_file = "/etc/barrierd/panel.key"\n', "loopback address only"),
    ('idle_timeout_s = 1\n', "greater than or equal to 2"),
])
def test_a_panel_on_another_address_without_tls_is_refused_at_load(tmp_path, panel, problem):
    with pytest.raises(ConfigError) as refused:
        load_site(site_with_panel(tmp_path, panel))
    assert problem in str(refused.value)


def test_a_panel_on_another_address_with_tls_files_loads(tmp_path):
    panel = load_site(site_with_panel(tmp_path, 'host = "192.0.2.10"\ntls_cert_file = "/etc/barrierd/panel.pem"\n'
                                                'tls_key_file = "/etc/barrierd/panel.key"\n')).panel
    assert panel.tls and panel.host == "192.0.2.10"
