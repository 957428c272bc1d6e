"""Fixtures of the end-to-end tier: real processes on a copy of the demo site, Unix users for the panel."""

import pytest

from tests.e2e.harness import Processes, site_copy
from tests.e2e.panel_rig import UnixUsers


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
