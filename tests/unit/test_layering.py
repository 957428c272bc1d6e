"""The import contracts in setup.cfg (import-linter): kept by the code, and each broken by one forbidden import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("hal", "config", "controller", "sim_plc", "centre", "tests")
CONTRACTS = 8

# contract id → (module that gains the import, the import it gains)
FORBIDDEN_IMPORTS = {
    "hal-below-everything": ("hal/bus.py", "controller.site"),
    "config-below-controller-and-sim": ("config/loader.py", "sim_plc.plant"),
    "sim-and-controller-apart": ("controller/actions.py", "sim_plc.plant"),
    "centre-apart-from-the-site": ("centre/fleet.py", "controller.site"),
    "adapters-above-core": ("controller/lanes.py", "controller.panel"),
    "test-tiers-apart": ("tests/unit/test_lanes.py", "tests.e2e.harness"),
    "centre-protocol-standalone": ("centre/protocol.py", "config.schema"),
    "controller-acyclic": ("controller/interlocks.py", "controller.site"),  # site -> actions -> interlocks
}


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    argv = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    env = {**os.environ, "COLUMNS": "300"}  # one line per import in the report
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)


def test_every_layering_contract_is_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in result.stdout


def test_every_contract_is_named_here() -> None:
    contract_ids = {line.removeprefix("[importlinter:contract:").rstrip("]\n")
                    for line in (REPO / "setup.cfg").read_text().splitlines()
                    if line.startswith("[importlinter:contract:")}
    assert contract_ids == set(FORBIDDEN_IMPORTS) and len(contract_ids) == CONTRACTS


@pytest.mark.parametrize("contract", sorted(FORBIDDEN_IMPORTS))
def test_one_forbidden_import_breaks_the_contract(tmp_path: Path, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    shutil.copy(REPO / "setup.cfg", tmp_path)
    module, imported = FORBIDDEN_IMPORTS[contract]
    with (tmp_path / module).open("a") as source:
        source.write(f"\nimport {imported}  # forbidden\n")
    importer = module.removesuffix(".py").replace("/", ".")

    result = lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    if contract == "controller-acyclic":  # named relative to controller, as the edges that close a circle
        assert "No cycles are allowed in controller." in result.stdout
    else:
        assert f"{importer} -> {imported}" in result.stdout
