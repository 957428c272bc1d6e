"""End to end: three crossings (sim-plc + barrierd each) publish to one Mosquitto; barrier-centre reads them all.

`status --json` names every site, lane and device with its state; a site whose barrierd is killed is shown offline
(its last will) and none of its devices keeps its last value; the web page in headless Chromium shows the three.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.harness import BIN, Processes, site_copy
from tests.e2e.mqtt_broker import Broker
from tests.e2e.panel_browser import Screens, browser
from tests.support import free_port, wait_until

pytestmark = pytest.mark.e2e

SITES = ("north", "south", "east")
FILTER = "border/#"
REFRESH_S = 2.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LANES = {"lane-1": ["signal-1", "blocker-1", "gate-1"], "lane-2": ["signal-2", "blocker-2", "gate-2"]}


def crossing(tmp: Path, name: str, broker_port: int) -> Processes:
    """The demo site renamed `name`, publishing under border/NAME."""
    folder = tmp / name
    folder.mkdir()
    site = site_copy(folder)
    text = site.read_text().replace('name = "demo-crossing"', f'name = "{name}"', 1)
    text = text.replace("poll_ms = 100", "poll_ms = 250", 1)  # three sites on a small test machine
    site.write_text(text + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\ntopic_prefix = "border/{name}"\n'
                           f'keepalive_s = 2\nrefresh_s = {REFRESH_S}\n')
    return Processes(tmp=folder, site=site)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("centre")
    broker = Broker(tmp)
    broker.start()
    sites = {name: crossing(tmp, name, broker.port) for name in SITES}
    try:
        with ThreadPoolExecutor(len(SITES)) as pool:  # the three crossings start side by side
            list(pool.map(lambda procs: procs.start_sim(timeout_s=60), sites.values()))
            list(pool.map(lambda procs: procs.start_daemon(timeout_s=60), sites.values()))
        yield broker, sites
    finally:
        for procs in sites.values():
            procs.close()
        broker.stop()


def centre_status(broker: Broker, *extra: str, timeout_s: float = 20) -> tuple[int, dict | None, str]:
    proc = subprocess.run([str(BIN / "barrier-centre"), "status", "--json", "--broker", f"127.0.0.1:{broker.port}",
                           "--prefix", FILTER, "--timeout", str(timeout_s), *extra],
                          capture_output=True, text=True, timeout=timeout_s + 30)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def by_site(picture: dict) -> dict[str, dict]:
    return {site["prefix"].removeprefix("border/"): site for site in picture["sites"]}


def device_states(site: dict) -> dict[str, str]:
    devices = [d for lane in site["lanes"] for d in lane["devices"]] + site["others"]
    return {d["name"]: d["state"] for d in devices}


def all_current(picture: dict | None) -> bool:
    if picture is None or set(by_site(picture)) != set(SITES):
        return False
    return all(site["state"] == "online" and set(device_states(site).values()) <= {"closed", "red", "open"}
               for site in picture["sites"])


def test_status_names_every_site_lane_and_device_with_its_state(fleet):
    broker, sites = fleet
    assert sites["south"].ctl("open", "gate-1")[0] == 0  # one difference between the sites, to be told apart
    wait_until(lambda: sites["south"].device("gate-1")["state"] == "open", 20, "south's gate-1 open at the site")

    def south_gate_open() -> dict | None:
        code, picture, _ = centre_status(broker)
        found = code == 0 and all_current(picture) and device_states(by_site(picture)["south"])["gate-1"] == "open"
        return picture if found else None

    picture = wait_until(south_gate_open, 60, "the centre's picture of three online sites, south's gate-1 open",
                         step_s=0.5)
    for name, site in by_site(picture).items():
        assert site["site"] == name and site["refresh_s"] == REFRESH_S
        assert {lane["name"]: [d["name"] for d in lane["devices"]] for lane in site["lanes"]} == LANES
        assert [d["name"] for d in site["others"]] == ["bay-entry", "bay-exit"]
        assert {p["name"] for p in site["plcs"]} == {"plc-lane-1", "plc-lane-2", "plc-bay"}
        assert site["lockdown"]["state"] == "off" and site["alarms"]["state"] == "current"
        states = device_states(site)
        assert states["blocker-1"] == states["blocker-2"] == "closed" and states["signal-1"] == "red"
        assert states["bay-entry"] == states["bay-exit"] == "closed"
        assert states["gate-1"] == ("open" if name == "south" else "closed")
        blocker = site["lanes"][0]["devices"][1]
        assert blocker["display"] == "raised" and blocker["current"] is True
    assert by_site(picture)["south"]["lanes"][0]["mode"] == "mixed"
    assert by_site(picture)["north"]["lanes"][0]["mode"] == "secured"


def test_watch_draws_every_site_with_its_lanes(fleet, tmp_path):
    broker, _ = fleet
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        watch = subprocess.Popen([str(BIN / "barrier-centre"), "watch", "--broker", f"127.0.0.1:{broker.port}",
                                  "--prefix", FILTER], stdout=sink, stderr=subprocess.STDOUT,
                                 env={**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "160"})
        try:
            def last_frame() -> str:
                text = ANSI.sub("", out.read_text(errors="replace"))  # the terminal's escapes, not the drawing
                return text.rsplit("barrier-centre  ", 1)[-1]

            frame = wait_until(lambda: (f := last_frame()).count("ONLINE") == 3 and "lane-2" in f and f, 30,
                               "three sites drawn online")
            for name in SITES:
                assert f"{name}  border/{name}" in frame
            assert "[signal-1 red] ═ [blocker-1 raised] ═ [gate-1 closed]" in frame
        finally:
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=15) == 0


def test_an_unreachable_broker_is_a_clear_error(tmp_path):
    port = free_port()  # nothing listens there
    proc = subprocess.run([str(BIN / "barrier-centre"), "status", "--json", "--broker", f"127.0.0.1:{port}",
                           "--connect-timeout", "2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5 and proc.stdout == ""
    assert f"broker 127.0.0.1:{port} not reachable" in proc.stderr


def test_status_prints_the_retained_fleet_while_the_sites_keep_publishing(tmp_path):
    """A fleet that never goes quiet: the first live message says the retained state is all in, so status prints
    well before its 60 s timeout (it used to wait the timeout out)."""
    import paho.mqtt.client as mqtt

    broker = Broker(tmp_path)
    broker.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for name in SITES:
            prefix = f"border/{name}"
            retained = {"status": {"online": True, "site": name, "since": 1.0, "refresh_s": 10},
                        "lane/lane-1": {"name": "lane-1", "mode": "secured", "devices": ["gate-1"]},
                        "device/gate-1": {"name": "gate-1", "kind": "folding_gate", "state": "closed"},
                        "lockdown": {"active": False}, "alarms": []}
            for topic, body in retained.items():
                client.publish(f"{prefix}/{topic}", json.dumps(body), qos=1, retain=True).wait_for_publish(10)
        status = subprocess.Popen([str(BIN / "barrier-centre"), "status", "--json", "--broker",
                                   f"127.0.0.1:{broker.port}", "--prefix", FILTER, "--timeout", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while status.poll() is None and time.monotonic() < deadline:  # a site's events every 20 ms: never quiet
            client.publish("border/north/events", json.dumps({"kind": "state_change", "subject": "gate-1"}), qos=0)
            time.sleep(0.02)
        if status.poll() is None:
            status.kill()
            pytest.fail("status still waiting after 30 s of a publishing fleet (its timeout is 60 s)")
        out, err = status.communicate()
        assert status.returncode == 0, err
        picture = json.loads(out)
        assert sorted(by_site(picture)) == sorted(SITES) and not err
        for site in picture["sites"]:
            assert site["state"] == "online" and site["lanes"][0]["devices"][0]["state"] == "closed"
    finally:
        client.loop_stop()
        client.disconnect()
        broker.stop()


@pytest.fixture(scope="module")
def web_page(fleet, tmp_path_factory):
    """`barrier-centre web` on the three crossings' broker, open in headless Chromium (screenshots in its folder)."""
    broker, _ = fleet
    tmp = tmp_path_factory.mktemp("centre-web")
    port = free_port()
    log_path = tmp / "centre-web.log"
    log = log_path.open("w")
    web = subprocess.Popen([str(BIN / "barrier-centre"), "web", "--listen", f"127.0.0.1:{port}", "--broker",
                            f"127.0.0.1:{broker.port}", "--prefix", FILTER], stdout=log, stderr=subprocess.STDOUT)
    driver = browser(tmp)
    try:
        wait_until(lambda: "barrier-centre web:" in log_path.read_text() or web.poll() is not None, 30, "page served")
        assert web.poll() is None, log_path.read_text()
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, Screens(driver, tmp)
    finally:
        driver.quit()
        web.terminate()
        web.wait(timeout=15)
        log.close()


def shown_sites(driver) -> dict[str, str]:
    return dict(driver.execute_script(
        "return [...document.querySelectorAll('.site')].map(c => [c.dataset.prefix, c.dataset.state]);"))


def shown_devices(driver, prefix: str) -> dict[str, str]:
    return dict(driver.execute_script(  # read in one go: the page redraws every second
        "return [...document.querySelectorAll(`.site[data-prefix='${arguments[0]}'] .device`)]"
        ".map(d => [d.dataset.device, d.dataset.state]);", prefix))


def test_the_web_page_shows_the_three_sites_live(web_page):
    driver, screens = web_page
    wait_until(lambda: shown_sites(driver) == {f"border/{name}": "online" for name in SITES}, 30, "three sites online")
    wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".site .device")) == 3 * 8, 15, "24 devices")
    order = driver.execute_script(
        "return [...document.querySelectorAll('.site[data-prefix=\"border/east\"] .lane[data-lane=\"lane-1\"] "
        ".device')].map(d => d.dataset.device);")
    assert order == LANES["lane-1"]
    blocker = driver.execute_script(
        "return document.querySelector('.site[data-prefix=\"border/east\"] .device[data-device=\"blocker-1\"]')"
        ".textContent;")
    assert "raised" in blocker and shown_devices(driver, "border/east")["gate-1"] == "closed"
    assert not driver.find_elements(By.CSS_SELECTOR, "button, form, input"), "the page is read only"
    screens.take("three-sites")


def test_a_killed_barrierd_is_shown_offline_and_its_devices_not_as_they_were(fleet, web_page):
    broker, sites = fleet
    driver, screens = web_page
    wait_until(lambda: shown_sites(driver).get("border/north") == "online", 30, "north online on the page")
    north = sites["north"]
    north.daemon.send_signal(signal.SIGKILL)  # no goodbye: only the broker's last will says it
    killed_at = time.monotonic()
    north.daemon.wait(timeout=10)

    def north_offline() -> dict | None:
        code, picture, _ = centre_status(broker, timeout_s=5)
        return picture if code == 0 and by_site(picture or {"sites": []}).get("north", {}).get("state") == "offline" \
            else None

    picture = wait_until(north_offline, 30, "north offline in the centre's status", step_s=0.2)
    print(f"SIGKILL to offline in `barrier-centre status`: {time.monotonic() - killed_at:.1f} s")
    wait_until(lambda: shown_sites(driver).get("border/north") == "offline", 10, "north offline on the page")
    print(f"SIGKILL to offline on the web page: {time.monotonic() - killed_at:.1f} s")
    assert set(shown_devices(driver, "border/north").values()) == {"offline"}
    assert set(shown_devices(driver, "border/east").values()) <= {"closed", "red"}
    screens.take("north-offline")
    north_seen = by_site(picture)["north"]
    assert north_seen["reason"] == "connection lost" and north_seen["site"] == "north"
    assert set(device_states(north_seen).values()) <= {"offline"} and len(device_states(north_seen)) == 8
    assert north_seen["lockdown"]["state"] == "offline" and north_seen["alarms"]["state"] == "offline"
    assert "closed" not in json.dumps(north_seen) and "raised" not in json.dumps(north_seen)
    others = by_site(picture)
    assert others["south"]["state"] == others["east"]["state"] == "online"
    assert device_states(others["east"])["gate-1"] == "closed"
