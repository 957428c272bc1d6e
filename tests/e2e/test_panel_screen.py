"""End to end: the panel's screen in Chromium at 1280x800: every lane on screen at once, and the login form after idling."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.panel_browser import Screens, browser, log_in, shown_state
from tests.e2e.panel_rig import start_panel_site
from tests.support import wait_until

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1280, 800  # the booth's touch screen
TOUCH_PX = 48
IDLE_S = 3


@pytest.fixture
def open_panel(tmp_path, users):
    """A panel site (its [panel] keys given) and Chromium on it; both closed after the test."""
    started = []

    def start(extra: str = ""):
        procs, url = start_panel_site(tmp_path, users, extra)
        started.append(procs)
        driver = browser(tmp_path)
        started.append(driver)
        driver.get(url)
        wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "the panel drawn")
        return procs, url, driver, Screens(driver, tmp_path)

    yield start
    for thing in reversed(started):
        thing.quit() if hasattr(thing, "quit") else thing.close()


RECTS = """
const box = e => { const r = e.getBoundingClientRect();
  return {what: e.dataset.lane || e.dataset.device || e.textContent.trim() || e.id,
          left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height}; };
return {scroll: [window.scrollX, window.scrollY], viewport: [innerWidth, innerHeight],
        lanes: [...document.querySelectorAll('.lane')].map(box),
        devices: [...document.querySelectorAll('.device')].map(box),
        lane_buttons: [...document.querySelectorAll('header button, #site-actions button, .lane button')].map(box),
        buttons: [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null).map(box)};
"""


def outside(rect: dict) -> bool:
    return rect["left"] < 0 or rect["top"] < 0 or rect["right"] > WIDTH or rect["bottom"] > HEIGHT


def assert_every_lane_on_screen(driver, layout: dict) -> dict:
    shown = driver.execute_script(RECTS)
    assert shown["viewport"] == [WIDTH, HEIGHT] and shown["scroll"] == [0, 0], shown
    lanes = [lane["name"] for lane in layout["lanes"]] + (["other"] if layout["others"] else [])
    assert [lane["what"] for lane in shown["lanes"]] == lanes
    devices = {d["name"] for lane in layout["lanes"] for d in lane["devices"]} | {d["name"] for d in layout["others"]}
    assert {d["what"] for d in shown["devices"]} == devices
    off_screen = [r["what"] for r in shown["lanes"] + shown["devices"] + shown["lane_buttons"] if outside(r)]
    assert off_screen == [], f"below the fold or beside the screen at {WIDTH}x{HEIGHT}: {off_screen}"
    small = [(b["what"], b["width"], b["height"]) for b in shown["buttons"]
             if b["width"] < TOUCH_PX or b["height"] < TOUCH_PX]
    assert small == [], f"touch targets under {TOUCH_PX} px: {small}"
    return shown


def test_every_lane_of_the_site_and_every_button_is_on_the_booth_screen_without_scrolling(open_panel, users):
    procs, url, driver, screens = open_panel()
    with urllib.request.urlopen(url + "api/layout", timeout=5) as reply:
        layout = json.load(reply)
    assert_every_lane_on_screen(driver, layout)
    screens.take("all-lanes-read-only")

    log_in(driver, users, "technician")  # the most buttons a role gets
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '.lane[data-lane="lane-1"] .lane-head button'), 5,
               "lane buttons")
    shown = assert_every_lane_on_screen(driver, layout)
    assert len(shown["buttons"]) > 20, shown["buttons"]  # the lanes' and devices' buttons are there to be measured
    screens.take("all-lanes-technician")

    assert procs.ctl("lockdown", "--reason", "drill: every lane must still show")[0] == 0
    wait_until(lambda: driver.find_element(By.ID, "lockdown").is_displayed(), 10, "the site lockdown banner")
    wait_until(lambda: driver.find_elements(By.XPATH, "//button[text()='Release site lockdown']"), 5,
               "the technician's release button")
    assert_every_lane_on_screen(driver, layout)
    screens.take("all-lanes-site-lockdown")


def test_the_page_shows_the_login_form_again_once_the_session_has_idled_out(open_panel, users):
    procs, _url, driver, screens = open_panel(f"idle_timeout_s = {IDLE_S}\n")
    log_in(driver, users, "operator")
    logged_in_at = time.monotonic()
    assert driver.find_elements(By.CSS_SELECTOR, ".lane button")
    wait_until(lambda: driver.find_element(By.ID, "login").is_displayed(), IDLE_S + 3, "the login form again")
    assert time.monotonic() - logged_in_at >= IDLE_S - 0.5, "the page logged out before the idle time"
    assert not driver.find_element(By.ID, "session").is_displayed()
    assert not driver.find_elements(By.CSS_SELECTOR, ".lane button, .device button, #site-actions button")
    assert "session ended" in driver.find_element(By.ID, "message").text
    assert shown_state(driver, "gate-1") == "closed"  # on loopback the status is still shown to read
    screens.take("session-idled-out")
