"""End to end: barrierd refuses a broken site file or a bad audit key with a clear message, and starts nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.harness import BIN, site_copy

pytestmark = pytest.mark.e2e


def run_barrierd(tmp_path, site):
    return subprocess.run(
        [str(BIN / "barrierd"), "--config", str(site), "--socket", str(tmp_path / "barrierd.sock"),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def test_a_broken_site_file_is_named_with_its_key_and_nothing_starts(tmp_path):
    site = site_copy(tmp_path)
    text = site.read_text()
    assert "travel_s = 3.0" in text
    site.write_text(text.replace("travel_s = 3.0", "travel_s = -3.0", 1))
    proc = run_barrierd(tmp_path, site)
    assert proc.returncode == 2
    assert str(site) in proc.stderr and "travel_s" in proc.stderr and "nothing started" in proc.stderr
    assert not (tmp_path / "barrierd.sock").exists() and not (tmp_path / "state" / "events.sqlite").exists()


def test_an_audit_key_of_the_wrong_size_is_named_and_nothing_starts(tmp_path):
    site = site_copy(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "events.sqlite.audit-key").write_bytes(b"not a key")
    proc = run_barrierd(tmp_path, site)
    assert proc.returncode == 2
    assert "events.sqlite.audit-key" in proc.stderr and "nothing started" in proc.stderr
    assert not (tmp_path / "barrierd.sock").exists()
