"""Fixtures of the end-to-end tier: real processes on a copy of the demo site."""

import pytest

from tests.e2e.harness import Processes, site_copy


@pytest.fixture
def site_processes(tmp_path):
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    procs.start_sim()
    procs.start_daemon()
    yield procs
    procs.close()
