"""The control socket of a running sim-plc: one JSON request line in, one JSON response line out.

Requests:  {"cmd": "inject", "plc": NAME, "fault": NAME, "slot": N|null, "active": bool, "code": N|null}
                                              → {"ok": true, "faults": [...], "applied_at": unix time}
           {"cmd": "faults"}                  → {"ok": true, "faults": [...]}
           {"cmd": "state", "plc": NAME|null} → {"ok": true, "state": {plc name: snapshot}}
Responses: {"ok": true, ...} or {"ok": false, "error": "why"}.
Fault names and what `code` means for each (a FAULT_CODE, a pressure, a temperature, wear in ppm per
cycle, a leak in mbar/s ...): sim_plc/faults.py; the condition physics: docs/sim-plc-physics.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

from sim_plc.errors import FaultError
from sim_plc.server import SimSite

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024


def default_socket_path() -> Path:
    """$XDG_RUNTIME_DIR/sim-plc.sock, or /tmp/sim-plc-<uid>.sock without a runtime directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "sim-plc.sock"
    return Path(f"/tmp/sim-plc-{os.getuid()}.sock")


class ControlError(Exception):
    """The control socket cannot be reached or answered nonsense."""


def handle_request(site: SimSite, request: Any) -> dict[str, Any]:
    """Carry out one control request against the running site."""
    if not isinstance(request, dict):
        return {"ok": False, "error": "request must be a JSON object"}
    cmd = request.get("cmd")
    try:
        if cmd == "inject":
            _check_inject(request)
            site.inject(
                request["plc"],
                request["fault"],
                request.get("slot"),
                bool(request.get("active", True)),
                request.get("code"),
            )
            applied_at = time.time()  # for latency measurements: when the fault input changed
            return {"ok": True, "faults": site.active_faults(), "applied_at": applied_at}
        if cmd == "faults":
            return {"ok": True, "faults": site.active_faults()}
        if cmd == "state":
            name = request.get("plc")
            plcs = [site.plc(name)] if name is not None else list(site.plcs.values())
            return {"ok": True, "state": {plc.name: plc.snapshot() for plc in plcs}}
    except FaultError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown cmd {cmd!r}; use inject, faults or state"}


def _check_inject(request: dict[str, Any]) -> None:
    for key in ("plc", "fault"):
        if not isinstance(request.get(key), str):
            raise FaultError(f"inject needs a string {key!r}")
    for key in ("slot", "code"):
        value = request.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise FaultError(f"{key!r} must be an integer")


class ControlServer:
    """Listens on a Unix socket (mode 0600) next to a running SimSite."""

    def __init__(self, site: SimSite, path: Path) -> None:
        self.site = site
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._remove_stale()
        self._server = await asyncio.start_unix_server(self._serve_client, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)
        log.info("control socket %s", self.path)

    def _remove_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(f"{self.path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.path))
            except OSError:
                self.path.unlink()  # left behind by a process that died
                return
        raise OSError(f"{self.path} is in use by another running sim-plc")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    response = handle_request(self.site, json.loads(line))
                except json.JSONDecodeError as exc:
                    response = {"ok": False, "error": f"bad JSON: {exc}"}
                writer.write(json.dumps(response).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as exc:  # ValueError: line longer than MAX_LINE
            log.warning("control client dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def send_request(path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Blocking client: send one request, return the parsed response; ControlError if unreachable."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"cannot reach control socket {path}: {exc} (is `sim-plc serve` running?)") from exc
    try:
        response = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ControlError(f"control socket {path} answered something that is not JSON") from exc
    if not isinstance(response, dict):
        raise ControlError(f"control socket {path} answered something that is not a JSON object")
    return response
