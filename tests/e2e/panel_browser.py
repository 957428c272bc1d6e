"""The panel in headless Chromium at the booth's 1280x800: the browser, numbered screenshots, reading and pressing."""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.panel_rig import UnixUsers
from tests.support import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def served_key_pin(address: str, port: int) -> str:
    """The SPKI pin (base64 SHA-256 of the public key) of the certificate served at `address`:`port`, for
    Chromium's --ignore-certificate-errors-spki-list: trusted is that key alone, not any certificate."""
    cert = x509.load_pem_x509_certificate(ssl.get_server_certificate((address, port), timeout=10).encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def browser(tmp_path, *, trusted_key_pin: str | None = None) -> webdriver.Chrome:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.fail("chromium and chromium-driver are not installed: `make test` installs them (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,800", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    if trusted_key_pin is not None:  # a panel's self-signed certificate (the flag needs --user-data-dir)
        options.add_argument(f"--ignore-certificate-errors-spki-list={trusted_key_pin}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the booth's touch screen, exactly
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    return driver


class Screens:
    """Numbered screenshots under the test's tmp dir (never committed), for a person to look at."""

    def __init__(self, driver: webdriver.Chrome, tmp_path) -> None:
        self.driver, self.folder, self.count = driver, tmp_path / "screens", 0
        self.folder.mkdir()

    def take(self, name: str) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), path
        print(f"screenshot: {path}")


def attribute(driver, selector: str, name: str) -> str | None:
    try:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return found[0].get_attribute(name) if found else None
    except StaleElementReferenceException:  # redrawn between finding and reading
        return None


def shown_state(driver, device: str) -> str | None:
    return attribute(driver, f'.device[data-device="{device}"]', "data-state")


def lane_mode(driver, lane: str) -> str | None:
    return attribute(driver, f'.lane[data-lane="{lane}"]', "data-mode")


def press(driver, scope: str, label: str) -> None:
    """Press the button labelled `label` inside `scope` with the keyboard, as a touch screen's user would tap it."""
    buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, f"{scope} button") if b.text == label]
    assert buttons, f"no button {label!r} in {scope}"
    buttons[0].send_keys(Keys.ENTER)


def message(driver) -> str:
    return driver.find_element(By.ID, "message").text


def log_in(driver, users: UnixUsers, role: str) -> None:
    name = users.names[role]
    driver.find_element(By.ID, "login-user").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(users.passwords[name] + Keys.ENTER)
    wait_until(lambda: driver.find_element(By.ID, "session-user").text == f"{name} ({role})", 10, "logged in")
