"""End to end: the panel's health view in Chromium at 1280x800 (travels charted by uPlot against the limit, EFO raises
against the EFO limit), the blockers' readiness badges on the lanes, and /api/health's read rules on loopback."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.panel_browser import attribute, shown_state
from tests.e2e.panel_rig import PanelClient
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CHART = """const u = health.charts[arguments[0]];
return u ? {labels: u.series.map(s => s.label), data: u.data} : null;"""
DIALOG = """const r = document.getElementById('health').getBoundingClientRect(), b = document.getElementById('health-close');
return {open: document.getElementById('health').open, box: [r.left, r.top, r.right, r.bottom],
        close: [b.offsetWidth, b.offsetHeight], scroll: [scrollX, scrollY]};"""


def travels_of(url: str, device: str) -> dict:
    """The device's travel times by direction, from /api/health as the page reads it (loopback: no login)."""
    answer = PanelClient(url).request("GET", f"/api/health?device={device}")
    assert answer.status == 200 and answer.body["exit"] == 0, answer.body
    return answer.body["data"]["devices"][0]


def drive(procs, *steps: tuple[str, ...]) -> None:
    for step in steps:
        code, _, err = procs.ctl(*step, "--wait") if step[0] != "lockdown" else procs.ctl(*step)
        assert code == 0, (step, err)


def test_the_health_view_charts_travels_against_their_limits_and_blockers_show_readiness(panel_in_browser):
    procs, url, driver, screens = panel_in_browser
    wait_until(lambda: procs.device("bay-exit")["state"] == "closed", 15, "bay-exit read as closed")
    drive(procs, ("open", "bay-exit"), ("close", "bay-exit"), ("open", "bay-exit"), ("close", "bay-exit"),
          ("lower", "blocker-2"), ("lockdown", "--lane", "lane-2", "--reason", "drill: EFO timing"))
    wait_until(lambda: len(travels_of(url, "bay-exit")["directions"]["closed"]["recent_ms"]) == 2, 5,
               "bay-exit's four travels stored")
    wait_until(lambda: travels_of(url, "blocker-2")["directions"]["efo"]["recent_ms"], 5, "the EFO raise stored")
    boom, blocker = travels_of(url, "bay-exit"), travels_of(url, "blocker-2")

    driver.get(url)
    wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "the panel drawn")
    wait_until(lambda: attribute(driver, '.device[data-device="blocker-1"]', "data-readiness") == "ready", 5,
               "blocker-1's readiness on its tile")
    assert driver.find_element(By.CSS_SELECTOR, '.device[data-device="blocker-1"] .badge').text == "EFO ready"
    assert not driver.find_element(By.CSS_SELECTOR, '.device[data-device="gate-1"] .badge').is_displayed()
    shown = procs.device("blocker-2")["readiness"]["state"]
    wait_until(lambda: attribute(driver, '.device[data-device="blocker-2"]', "data-readiness") in (
        "ready", "degraded", "not_ready"), 5, "blocker-2's readiness after its EFO raise")
    assert shown in ("ready", "degraded", "not_ready")
    screens.take("readiness-on-the-lanes")

    driver.find_element(By.CSS_SELECTOR, '.device[data-device="bay-exit"] .name').click()  # a tap on the tile
    wait_until(lambda: driver.execute_script(CHART, "bay-exit"), 10, "bay-exit's chart drawn")
    chart = driver.execute_script(CHART, "bay-exit")
    assert chart["labels"][:3] == ["travel #", "to open", "to closed"] and "EFO limit" not in chart["labels"]
    xs, opened, closed = chart["data"][:3]
    assert xs == sorted(boom["directions"]["open"]["recent_ids"] + boom["directions"]["closed"]["recent_ids"])
    assert [v for v in opened if v is not None] == [ms / 1000 for ms in boom["directions"]["open"]["recent_ms"]]
    assert [v for v in closed if v is not None] == [ms / 1000 for ms in boom["directions"]["closed"]["recent_ms"]]
    limit = chart["data"][chart["labels"].index("limit")]
    assert limit == [boom["directions"]["open"]["limit_ms"] / 1000] * 4 == [2.5] * 4, "travel_s 2.0 s + 25 %"
    canvas = driver.find_element(By.CSS_SELECTOR, '.health-device[data-device="bay-exit"] canvas')
    assert int(canvas.get_attribute("width")) > 100 and int(canvas.get_attribute("height")) > 50
    assert "picked" in attribute(driver, '.health-device[data-device="bay-exit"]', "class")

    efo_chart = driver.execute_script(CHART, "blocker-2")
    efo = efo_chart["data"][efo_chart["labels"].index("EFO raise")]
    assert [v for v in efo if v is not None] == [ms / 1000 for ms in blocker["directions"]["efo"]["recent_ms"]]
    assert set(efo_chart["data"][efo_chart["labels"].index("EFO limit")]) == {2.5}
    card = driver.find_element(By.CSS_SELECTOR, '.health-device[data-device="blocker-1"]')
    assert "no travels yet" in card.text and card.get_attribute("data-readiness") == "ready"
    dialog = driver.execute_script(DIALOG)
    left, top, right, bottom = dialog["box"]
    assert dialog["open"] and dialog["scroll"] == [0, 0] and left >= 0 and top >= 0 and right <= 1280 and bottom <= 800
    assert min(dialog["close"]) >= 48, dialog
    screens.take("health-view")

    driver.find_element(By.ID, "health-close").send_keys(Keys.ENTER)
    wait_until(lambda: not driver.execute_script(DIALOG)["open"], 5, "the health view closed")
    assert shown_state(driver, "gate-1") == "closed", "the lanes are still there, unscrolled"


def test_api_health_answers_through_the_registry_and_names_a_wrong_device(panel_in_browser):
    _procs, url, _driver, _screens = panel_in_browser
    anyone = PanelClient(url)  # loopback: reading needs no login
    everything = anyone.request("GET", "/api/health")
    assert everything.status == 200 and set(everything.body) == {"exit", "outcome", "message", "data"}
    assert {d["name"] for d in everything.body["data"]["devices"]} == {
        "gate-1", "blocker-1", "gate-2", "blocker-2", "bay-entry", "bay-exit"}, "signals do not travel"
    wrong = anyone.request("GET", "/api/health?device=gate-9")
    assert wrong.status == 400 and wrong.body["exit"] == 2 and "no device named 'gate-9'" in wrong.body["message"]
    signal = anyone.request("GET", "/api/health?device=signal-1")
    assert signal.status == 200 and signal.body["exit"] == 3 and "not_monitored" in signal.body["message"]
