"""The e2e harness on a virtual RS-485 line: `sim-plc vline`, `sim-plc --serial`, barrierd and barrierctl as
real processes, on a copy of config/sites/demo-rtu.toml whose line ends live in the test's tmp directory."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import BIN, REPO, Processes, site_copy
from tests.support import wait_until

RTU_SITE = REPO / "config" / "sites" / "demo-rtu.toml"
LANE_BUS = "rs485-lanes"
CONFIGURED_MASTER = 'port = "demo-run/demo-rtu/rs485-master"'


def rtu_site_copy(tmp: Path, source: Path = RTU_SITE) -> Path:
    """demo-rtu.toml with free TCP ports and the line's master end at tmp/rs485-master."""
    path = site_copy(tmp, source)
    text = path.read_text()
    assert CONFIGURED_MASTER in text, f"{source} no longer names {CONFIGURED_MASTER}"
    path.write_text(text.replace(CONFIGURED_MASTER, f'port = "{tmp / "rs485-master"}"'))
    return path


@dataclass
class RtuProcesses(Processes):
    """Processes plus the virtual line; sim-plc serves the lane bus on the line's slave end."""

    baud: int = 19200
    vline: subprocess.Popen | None = None

    @property
    def master_link(self) -> Path:
        return self.tmp / "rs485-master"

    @property
    def slaves_link(self) -> Path:
        return self.tmp / "rs485-slaves"

    def start_vline(self) -> None:
        self.vline = self._spawn(
            [str(BIN / "sim-plc"), "vline", "--baud", str(self.baud), str(self.master_link), str(self.slaves_link)],
            "vline.log",
        )
        wait_until(lambda: "vline_ready" in (self.tmp / "vline.log").read_text() or self.vline.poll() is not None,
                   15, "sim-plc vline ready")
        assert self.vline.poll() is None, (self.tmp / "vline.log").read_text()

    def start_sim(self, *extra: str) -> None:
        self.sim = self._spawn(
            [str(BIN / "sim-plc"), "--config", str(self.site), "--write-log", str(self.write_log),
             "--control", str(self.sim_control), "--serial", f"{LANE_BUS}={self.slaves_link}", *extra],
            "sim-plc.log",
        )
        wait_until(lambda: "sim_plc_ready" in (self.tmp / "sim-plc.log").read_text() or self.sim.poll() is not None,
                   15, "sim-plc ready")
        assert self.sim.poll() is None, (self.tmp / "sim-plc.log").read_text()

    def close(self) -> None:
        super().close()
        if self.vline is not None and self.vline.poll() is None:
            self.vline.terminate()
            try:
                self.vline.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.vline.kill()
                self.vline.wait()
