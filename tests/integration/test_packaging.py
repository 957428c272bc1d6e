"""The package builds without warnings of the project's own making and carries its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_without_setuptools_warnings_and_ships_the_sites_and_the_panel(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    output = build.stdout + build.stderr
    ours = [line for line in output.splitlines() if "_Warning" in line or "would be ignored" in line
            or "SetuptoolsDeprecationWarning" in line]
    assert ours == [], "\n".join(ours)
    wheel = next(tmp_path.glob("barrier_supervisor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "config/sites/demo.toml" in names and "config/sites/demo-rtu.toml" in names
    assert any(name.startswith("controller/panel_static/") for name in names)
    assert {"centre/static/index.html", "centre/static/centre.js", "centre/static/centre.css"} <= names
    assert {"controller/panel_static/health.js", "controller/panel_static/vendor/uPlot.iife.min.js",
            "controller/panel_static/vendor/uPlot.min.css", "controller/panel_static/vendor/uPlot.LICENSE"} <= names
    assert not any(name.startswith("tests/") for name in names)
