"""Fixtures of the end-to-end tier: real processes on a copy of the demo site, Unix users and an address for the panel."""

import subprocess

import pytest

from tests.e2e.harness import Processes, site_copy
from tests.e2e.panel_browser import Screens, browser
from tests.e2e.panel_rig import UnixUsers, own_addresses, start_panel_site

SPARE_ADDRESS = "198.18.0.7"  # RFC 2544's benchmarking range: never routed, not loopback


@pytest.fixture
def site_processes(tmp_path):
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    procs.start_sim()
    procs.start_daemon()
    yield procs
    procs.close()


@pytest.fixture(scope="module")
def users():
    """Real Unix users with a password and a role each (created once per test module, removed after)."""
    created = UnixUsers.create()
    yield created
    created.remove()


@pytest.fixture(scope="module")
def non_loopback_address():
    """An address of this host that is not loopback: its own, or else one added to `lo` for the module."""
    mine = own_addresses()
    if mine:
        yield mine[0]
        return
    subprocess.run(["ip", "addr", "add", f"{SPARE_ADDRESS}/32", "dev", "lo"], check=True)
    try:
        yield SPARE_ADDRESS
    finally:
        subprocess.run(["ip", "addr", "del", f"{SPARE_ADDRESS}/32", "dev", "lo"], check=False)


@pytest.fixture
def panel_in_browser(tmp_path, users):
    """The demo site with its panel, a headless Chromium on it, and the screenshots' writer."""
    procs, url = start_panel_site(tmp_path, users)
    driver = browser(tmp_path)
    yield procs, url, driver, Screens(driver, tmp_path)
    driver.quit()
    procs.close()
