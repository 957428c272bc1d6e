"""End to end: the guard's panel in headless Chromium at 1280x800, used as a guard uses it; a screenshot of each screen."""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.panel_browser import attribute, lane_mode, log_in, message, press, shown_state
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_a_guard_secures_locks_down_is_refused_acknowledges_and_logs_out(panel_in_browser, users):
    procs, url, driver, screens = panel_in_browser
    driver.get(url)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "gate-1 closed on the panel")
    assert "site demo" in driver.find_element(By.ID, "title").text
    assert not driver.find_elements(By.CSS_SELECTOR, ".lane button")  # reading needs no login, acting does
    log_in(driver, users, "operator")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '.lane[data-lane="lane-1"] button'), 5, "lane buttons")
    small = driver.execute_script(
        "return [...document.querySelectorAll('button, input')].filter(b => b.offsetParent !== null)"
        ".filter(b => b.offsetHeight < 48 || b.offsetWidth < 48).map(b => b.textContent || b.id);")
    assert small == [], f"touch targets under 48 px: {small}"
    screens.take("logged-in")

    press(driver, '.device[data-device="gate-1"]', "open")
    wait_until(lambda: shown_state(driver, "gate-1") == "open", 10, "gate-1 open")
    wait_until(lambda: lane_mode(driver, "lane-1") == "mixed", 5, "lane-1 mixed")
    press(driver, '.lane[data-lane="lane-1"] .actions', "Secure lane")
    wait_until(lambda: shown_state(driver, "gate-1") == "closing", 10, "gate-1 seen closing")
    assert "moving" in attribute(driver, '.device[data-device="gate-1"]', "class")
    screens.take("securing-lane-1")
    wait_until(lambda: lane_mode(driver, "lane-1") == "secured", 15, "lane-1 secured")
    assert "lane_secure: " in message(driver)
    screens.take("lane-1-secured")

    press(driver, '.lane[data-lane="lane-1"] .actions', "Lockdown lane")
    reason = driver.find_element(By.ID, "confirm-reason")
    wait_until(reason.is_displayed, 5, "the confirmation asks for a reason")
    reason.send_keys(Keys.ENTER)  # no reason: nothing is sent
    assert reason.is_displayed() and lane_mode(driver, "lane-1") == "secured"
    screens.take("lockdown-asks-a-reason")
    reason.send_keys("suspicious vehicle in lane 1" + Keys.ENTER)
    wait_until(lambda: lane_mode(driver, "lane-1") == "lockdown", 10, "lane-1 in lockdown")
    assert "suspicious vehicle" in driver.find_element(By.CSS_SELECTOR, '.lane[data-lane="lane-1"] .lane-reason').text
    screens.take("lane-1-lockdown")

    press(driver, '.device[data-device="gate-1"]', "open")
    wait_until(lambda: "refused by rule" in message(driver), 10, "the refusal's rule on screen")
    assert "lockdown" in message(driver) and shown_state(driver, "gate-1") == "closed"
    screens.take("refused-by-rule")

    assert procs.sim_ctl("inject", "plc-lane-2", "lamp_fault", "--slot", "2")[0] == 0
    assert procs.sim_ctl("inject", "plc-lane-2", "vehicle_present", "--slot", "1")[0] == 0
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#alarms li button"), 10, "an alarm to acknowledge")
    wait_until(lambda: "LAMP" in driver.find_element(By.CSS_SELECTOR, '.device[data-device="signal-2"] .note').text,
               5, "the fault's alarm text on its device")
    wait_until(driver.find_element(By.CSS_SELECTOR, '.lane[data-lane="lane-2"] .vehicle').is_displayed, 5,
               "a vehicle drawn on lane-2's loop")
    screens.take("alarm-and-vehicle")
    press(driver, "#alarms li", "Acknowledge")
    wait_until(lambda: f"acknowledged by {users.names['operator']}" in driver.find_element(By.ID, "alarms").text,
               10, "the alarm acknowledged by the guard")
    screens.take("alarm-acknowledged")

    with sqlite3.connect(procs.event_db) as db:
        rows = set(db.execute("SELECT user, command, outcome FROM commands"))
    guard = users.names["operator"]
    assert {(guard, "lane_secure", "done"), (guard, "lockdown", "done"), (guard, "open", "refused"),
            (guard, "ack", "done")} <= rows, rows

    driver.find_element(By.ID, "lock").send_keys(Keys.ENTER)
    wait_until(lambda: driver.find_element(By.ID, "login").is_displayed(), 5, "the login form again")
    assert not driver.find_elements(By.CSS_SELECTOR, ".lane button")
    screens.take("locked")


def test_no_data_within_two_seconds_when_barrierd_stops_answering(panel_in_browser, users):
    procs, url, driver, screens = panel_in_browser
    driver.get(url)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "gate-1 closed on the panel")
    procs.daemon.send_signal(signal.SIGSTOP)  # hung, not gone: the page gets no message at all
    try:
        wait_until(lambda: shown_state(driver, "gate-1") == "no data", 3, "no state while barrierd hangs")
        states = [t.get_attribute("data-state") for t in driver.find_elements(By.CSS_SELECTOR, ".device")]
        assert states and set(states) == {"no data"}, states
        assert "no data since" in driver.find_element(By.CSS_SELECTOR, '.device[data-device="gate-1"] .state').text
        assert "not answering" in driver.find_element(By.ID, "banner").text
        screens.take("no-data")
    finally:
        procs.daemon.send_signal(signal.SIGCONT)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 10, "gate-1 shown again once barrierd answers")
    procs.daemon.send_signal(signal.SIGKILL)
    procs.daemon.wait(timeout=10)
    wait_until(lambda: shown_state(driver, "gate-1") == "no data", 3, "no state once barrierd is gone")


def page_fetch(driver, path: str, body: dict, headers: dict) -> dict:
    """A request made by the page's own JavaScript: the browser adds the cookie and the Origin itself."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'same-origin', body: JSON.stringify(arguments[1]),"
        " headers: Object.assign({'Content-Type': 'application/json'}, arguments[2])})"
        ".then(async r => done({status: r.status, body: await r.json()})).catch(e => done({error: String(e)}));",
        path, body, headers)


def test_the_browser_is_refused_without_login_with_a_wrong_role_without_csrf_and_from_another_origin(panel_in_browser, users):
    procs, url, driver, screens = panel_in_browser
    driver.get(url)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "the panel drawn")
    open_gate = {"command": "open", "args": {"device": "gate-1"}}
    assert page_fetch(driver, "/api/command", open_gate, {})["status"] == 401

    log_in(driver, users, "viewer")
    assert not driver.find_elements(By.CSS_SELECTOR, ".lane button, .device button")  # nothing offered to a viewer
    screens.take("viewer")
    csrf = driver.execute_async_script(
        "const done = arguments[0]; fetch('/api/session').then(r => r.json()).then(s => done(s.csrf));")
    refused = page_fetch(driver, "/api/command", open_gate, {"X-CSRF-Token": csrf})
    assert refused["status"] == 403 and refused["body"]["exit"] == 4, refused
    assert page_fetch(driver, "/api/command", open_gate, {})["status"] == 403  # no CSRF token

    other = url.replace("127.0.0.1", "localhost")  # another origin for the browser; the cookie is not sent there
    driver.get(other)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "the panel under another name")
    foreign = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', mode: 'no-cors', credentials: 'include', body: arguments[1],"
        " headers: {'Content-Type': 'text/plain'}}).then(r => done(r.type)).catch(e => done(String(e)));",
        url + "api/command", json.dumps(open_gate))
    assert foreign in ("opaque", "TypeError: Failed to fetch"), foreign
    with sqlite3.connect(procs.event_db) as db:
        done = db.execute("SELECT count(*) FROM commands WHERE command = 'open' AND outcome = 'done'").fetchone()[0]
    assert done == 0 and procs.device("gate-1")["state"] == "closed"


def test_the_panel_api_serves_the_status_the_events_and_the_layout(panel_in_browser):
    procs, url, _driver, _screens = panel_in_browser
    with urllib.request.urlopen(url + "api/status", timeout=5) as reply:
        status = json.load(reply)
        assert reply.headers["Cache-Control"] == "no-store"
    assert {d["name"] for d in status["devices"]} >= {"gate-1", "blocker-1", "bay-exit"}
    with urllib.request.urlopen(url + "api/layout", timeout=5) as reply:
        layout = json.load(reply)
    assert [d["role"] for d in layout["lanes"][0]["devices"]] == ["signal", "blocker", "gate"]
    assert layout["airlocks"] == [["bay-entry", "bay-exit"]]
    with urllib.request.urlopen(url + "api/events?after=0", timeout=5) as reply:
        events = json.load(reply)["events"]
    assert any(e["summary"] == "barrierd started" for e in events)
    for bad in ("x", str(2**70), "-1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + f"api/events?after={bad}", timeout=5)
        assert refused.value.code == 400, bad


def test_the_panel_turns_away_a_request_addressed_to_another_host_name(panel_in_browser):
    """DNS rebinding: a page from elsewhere, its name re-pointed at 127.0.0.1, still sends its own Host."""
    _procs, url, _driver, _screens = panel_in_browser
    request = urllib.request.Request(url + "api/status", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 421
    with urllib.request.urlopen(url.replace("127.0.0.1", "localhost") + "api/status", timeout=5) as reply:
        assert reply.status == 200
