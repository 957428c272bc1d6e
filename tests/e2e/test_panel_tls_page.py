"""End to end: the page of a panel off loopback (HTTPS, reading needs a session) in headless Chromium: the login
form alone until a login, the crossing while logged in, the login form again after a logout or an idle end."""

from __future__ import annotations

import secrets
import sqlite3
import time
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.panel_browser import Screens, browser, log_in, press, served_key_pin, shown_state
from tests.e2e.panel_rig import start_tls_panel_site
from tests.support import wait_until

pytestmark = pytest.mark.e2e

IDLE_S = 6
LOGIN_FORM_HELD_S = 3.5  # the page keeps its login form this long untouched (the old page reloaded every 2 s)
ONLY_THE_LOGIN_FORM = """
return {marker: window.loadMarker ?? null,
        login: !document.getElementById('login').hidden, session: !document.getElementById('session').hidden,
        lanes: document.querySelectorAll('.lane, .device').length, events: document.querySelectorAll('#events li').length,
        banner: document.getElementById('banner').textContent, stale: document.body.classList.contains('stale'),
        layouts: window.layoutAsks};
"""
MARK_AND_COUNT = """
window.loadMarker = arguments[0];  // gone if the page is loaded again
window.layoutAsks = 0;
const fetchOf = window.fetch;
window.fetch = (what, options) => { if (String(what).startsWith('/api/layout')) window.layoutAsks += 1;
                                    return fetchOf(what, options); };
"""


@pytest.fixture
def tls_page(tmp_path, users, non_loopback_address):
    procs, url, _tls = start_tls_panel_site(tmp_path, users, non_loopback_address,
                                            extra=f"idle_timeout_s = {IDLE_S}\n")
    where = urlsplit(url)
    driver = browser(tmp_path, trusted_key_pin=served_key_pin(where.hostname, where.port))
    yield procs, url, driver, Screens(driver, tmp_path)
    driver.quit()
    procs.close()


def login_form_only(driver, marker: str) -> dict:
    """What the page shows, asserted to be its login form and nothing of the crossing, in the page first loaded."""
    shown = driver.execute_script(ONLY_THE_LOGIN_FORM)
    assert shown["marker"] == marker, f"the page was loaded again: {shown}"
    assert shown["login"] and not shown["session"], shown
    assert shown["lanes"] == 0 and shown["events"] == 0 and shown["banner"] == "" and not shown["stale"], shown
    return shown


def holds_for(check, seconds: float) -> int:
    """Run `check` (it asserts) every 0.2 s for `seconds`; how many times it held."""
    deadline, held = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        check()
        held += 1
        time.sleep(0.2)
    return held


def test_off_loopback_the_page_waits_on_its_login_form_then_reads_and_returns_to_it(tls_page, users):
    procs, url, driver, screens = tls_page
    assert url.startswith("https://") and not url.startswith("https://127.")
    driver.get(url)
    wait_until(lambda: "log in to see the crossing" in driver.find_element(By.ID, "message").text, 10,
               "the page asks for a login")
    marker = secrets.token_hex(4)
    driver.execute_script(MARK_AND_COUNT, marker)
    assert holds_for(lambda: login_form_only(driver, marker), LOGIN_FORM_HELD_S) >= 10
    assert login_form_only(driver, marker)["layouts"] == 0, "the layout was asked for again before a login"
    assert driver.switch_to.active_element.get_attribute("id") == "login-user"  # ready to type
    screens.take("tls-login-form")

    log_in(driver, users, "operator")
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 10, "gate-1 read once logged in")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '.lane[data-lane="lane-1"] button'), 5, "lane buttons")
    assert driver.execute_script("return [window.loadMarker, window.layoutAsks]") == [marker, 1]
    assert "site demo" in driver.find_element(By.ID, "title").text
    screens.take("tls-logged-in")

    driver.refresh()  # a page opened with a session reads at once, and still knows reading needs one
    marker = secrets.token_hex(4)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 10, "gate-1 read on a page opened logged in")
    driver.execute_script(MARK_AND_COUNT, marker)
    press(driver, "#session", "Log out")
    wait_until(lambda: driver.find_element(By.ID, "login").is_displayed(), 5, "the login form after logout")
    assert holds_for(lambda: login_form_only(driver, marker), 2.5) >= 5  # no "not answering": nothing is read
    assert "session ended" in driver.find_element(By.ID, "message").text
    screens.take("tls-logged-out")

    driver.find_element(By.ID, "login-user").clear()  # the form keeps the last name typed
    log_in(driver, users, "operator")
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 10, "gate-1 read after logging in again")
    logged_in_at = time.monotonic()
    wait_until(lambda: driver.find_element(By.ID, "login").is_displayed(), IDLE_S + 3, "the login form after idling")
    assert time.monotonic() - logged_in_at >= IDLE_S - 1, "the page logged out before the idle time"
    login_form_only(driver, marker)
    assert "session ended" in driver.find_element(By.ID, "message").text
    screens.take("tls-idled-out")

    with sqlite3.connect(procs.event_db) as db:
        events = db.execute("SELECT summary FROM events WHERE kind = 'panel' AND subject = ?",
                            (users.names["operator"],)).fetchall()
    assert [e[0] for e in events] == ["logged in on the panel as operator", "logged out of the panel",
                                      "logged in on the panel as operator", f"session ended: idle for {IDLE_S} s"]
