"""End to end: the operator panel in headless Chromium follows the devices, and shows no state once barrierd is gone."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.e2e.harness import Processes, site_copy
from tests.support import free_port, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(tmp_path) -> webdriver.Chrome:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.fail("chromium and chromium-driver are not installed: `make test` installs them (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def panel_site(tmp_path):
    port = free_port()
    site = site_copy(tmp_path)
    site.write_text(site.read_text() + f'\n[panel]\nhost = "127.0.0.1"\nport = {port}\n')
    procs = Processes(tmp=tmp_path, site=site)
    procs.start_sim()
    procs.start_daemon()
    yield procs, f"http://127.0.0.1:{port}/"
    procs.close()


def shown_state(driver: webdriver.Chrome, device: str) -> str | None:
    try:
        cells = driver.find_elements(By.CSS_SELECTOR, f'#devices tr[data-device="{device}"] td.state')
        return cells[0].text if cells else None
    except StaleElementReferenceException:  # the table was redrawn between finding and reading
        return None


def test_the_panel_follows_a_device_and_shows_no_state_once_barrierd_is_gone(panel_site, tmp_path):
    procs, url = panel_site
    driver = browser(tmp_path)
    try:
        driver.get(url)
        wait_until(lambda: shown_state(driver, "gate-1") == "closed", 15, "gate-1 closed on the panel")
        assert "site demo" in driver.find_element(By.ID, "title").text
        assert procs.ctl("open", "gate-1")[0] == 0
        wait_until(lambda: shown_state(driver, "gate-1") == "open", 10, "gate-1 open on the panel")
        wait_until(lambda: "open → accepted by the PLC" in driver.find_element(By.ID, "events").text, 5, "the command listed")

        procs.daemon.send_signal(signal.SIGSTOP)  # hung, not gone: the page's requests get no answer at all
        try:
            wait_until(lambda: shown_state(driver, "gate-1") == "no data", 5, "no state while barrierd hangs")
            states = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#devices td.state")]
            assert states and set(states) == {"no data"}, states
            comms = [row.find_elements(By.TAG_NAME, "td")[1].text
                     for row in driver.find_elements(By.CSS_SELECTOR, "#plcs tbody tr")]
            assert comms and set(comms) == {"no data"}, comms
            assert "not answering" in driver.find_element(By.ID, "banner").text
        finally:
            procs.daemon.send_signal(signal.SIGCONT)
        wait_until(lambda: shown_state(driver, "gate-1") == "open", 10, "gate-1 shown again once barrierd answers")

        procs.daemon.send_signal(signal.SIGKILL)
        procs.daemon.wait(timeout=10)
        wait_until(lambda: shown_state(driver, "gate-1") == "no data", 5, "no state once barrierd is gone")
    finally:
        driver.quit()


def test_the_panel_api_serves_the_status_and_the_events(panel_site):
    procs, url = panel_site
    with urllib.request.urlopen(url + "api/status", timeout=5) as reply:
        status = json.load(reply)
        assert reply.headers["Cache-Control"] == "no-store"
    assert {d["name"] for d in status["devices"]} >= {"gate-1", "blocker-1", "bay-exit"}
    with urllib.request.urlopen(url + "api/events?after=0", timeout=5) as reply:
        events = json.load(reply)["events"]
    assert any(e["summary"] == "barrierd started" for e in events)
    for bad in ("x", str(2**70), "-1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + f"api/events?after={bad}", timeout=5)
        assert refused.value.code == 400, bad


def test_the_panel_turns_away_a_request_addressed_to_another_host_name(panel_site):
    """DNS rebinding: a page from elsewhere, its name re-pointed at 127.0.0.1, still sends its own Host."""
    _procs, url = panel_site
    request = urllib.request.Request(url + "api/status", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 421
    with urllib.request.urlopen(url.replace("127.0.0.1", "localhost") + "api/status", timeout=5) as reply:
        assert reply.status == 200
