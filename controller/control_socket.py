"""The Unix control socket: one JSON request per line, one JSON reply per line, caller from SO_PEERCRED."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from controller.event_store import Caller

log = structlog.get_logger("controller.control_socket")

MAX_REQUEST_BYTES = 64 * 1024
Dispatch = Callable[[dict, Caller], Awaitable[dict]]
Identify = Callable[[int, int, int], Caller]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class ControlServer:
    """Serves the control protocol on a Unix socket created with mode 0660."""

    def __init__(self, path: Path, dispatch: Dispatch, identify: Identify):
        self.path = path
        self._dispatch = dispatch
        self._identify = identify
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()
        old_umask = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)
        log.info("control_socket_listening", path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.path.is_socket():
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid, gid = peer_credentials(writer.get_extra_info("socket"))
        caller = self._identify(pid, uid, gid)
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                except ValueError as exc:
                    reply = {"exit": 2, "outcome": "usage", "message": f"malformed request: {exc}", "data": None}
                else:
                    reply = await self._dispatch(request, caller)
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("control_connection_dropped", pid=pid, uid=uid, error=str(exc))
        finally:
            writer.close()
