"""The Unix control socket: one bounded JSON request per line, one JSON reply per line, caller from SO_PEERCRED."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog

from controller.connection_limits import ConnectionCaps, RefusalBudget
from controller.auth import Caller
from controller.exit_codes import ExitCode
from controller.request_bounds import MAX_REQUEST_BYTES, MalformedRequest, parse_request

log = structlog.get_logger("controller.control_socket")

READ_DEADLINE_S = 5.0  # a request line must be complete this long after its first byte; a reply sent as long
IDLE_TIMEOUT_S = 30.0  # a connection with no request for this long is closed
ACCEPT_RETRY_S = 0.5  # out of descriptors: wait this long before accepting again, never spin
TURNED_AWAY_LOG_S = 10.0  # connections over a cap are logged as a count at most this often
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_REFUSED = {ExitCode.USAGE, ExitCode.NOT_AUTHORISED}

Dispatch = Callable[[dict, Caller], Awaitable[dict]]
Identify = Callable[[int, int, int], Caller]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def error_reply(code: ExitCode, message: str) -> dict:
    outcome = "usage" if code == ExitCode.USAGE else "error"
    return {"exit": int(code), "outcome": outcome, "message": message, "data": None}


def encode_reply(reply: dict) -> bytes:
    return json.dumps(reply, default=str).encode() + b"\n"


class ConnectionClosing(Exception):
    """The connection broke a bound; the reply says which, then the connection is closed."""

    def __init__(self, reply: dict):
        self.reply = reply
        super().__init__(reply["message"])


class LineReader:
    """Request lines from a socket, each at most `max_bytes`, complete within `read_deadline_s` of its first
    byte, the next one begun within `idle_timeout_s`."""

    def __init__(self, sock: socket.socket, read_deadline_s: float, idle_timeout_s: float,
                 max_bytes: int = MAX_REQUEST_BYTES):
        self._sock = sock
        self._buffer = bytearray()
        self.read_deadline_s, self.idle_timeout_s, self.max_bytes = read_deadline_s, idle_timeout_s, max_bytes

    async def next_line(self) -> bytes | None:
        """The next line without its newline; None once the peer has closed and nothing is left."""
        loop = asyncio.get_running_loop()
        started = loop.time() if self._buffer else None
        while (end := self._buffer.find(b"\n")) < 0:
            self._check_size(len(self._buffer))
            if started is None:
                deadline = loop.time() + self.idle_timeout_s
                why = error_reply(ExitCode.ERROR, f"no request for {self.idle_timeout_s:g} s; closing")
            else:
                deadline = started + self.read_deadline_s
                why = error_reply(ExitCode.USAGE, f"request not complete within {self.read_deadline_s:g} s"
                                                  " of its first byte; closing")
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await loop.sock_recv(self._sock, 4096)
            except TimeoutError:
                raise ConnectionClosing(why) from None
            if not chunk:
                line, self._buffer = bytes(self._buffer), bytearray()
                return line or None
            if started is None:
                started = loop.time()
            self._buffer += chunk
        self._check_size(end)
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return line

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise ConnectionClosing(error_reply(
                ExitCode.USAGE, f"request too large: more than {self.max_bytes} bytes in one line; closing"))


class ControlServer:
    """Serves the control protocol on a Unix socket created with mode 0660, within the bounds above."""

    def __init__(self, path: Path, dispatch: Dispatch, identify: Identify, *,
                 privileged_uids: Iterable[int] | None = None, read_deadline_s: float = READ_DEADLINE_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, caps: ConnectionCaps | None = None,
                 refusals: RefusalBudget | None = None):
        self.path = path
        self._dispatch = dispatch
        self._identify = identify
        privileged = frozenset({0, os.geteuid()} if privileged_uids is None else privileged_uids)
        self.caps = caps or ConnectionCaps(privileged)
        self.refusals = refusals or RefusalBudget(exempt_uids=privileged)
        self.read_deadline_s, self.idle_timeout_s = read_deadline_s, idle_timeout_s
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._connections: set[asyncio.Task] = set()
        self._turned_away = 0
        self._turned_away_logged_at = float("-inf")

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)
        try:
            listener.bind(str(self.path))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept_loop(), name="control-socket-accept")
        log.info("control_socket_listening", path=str(self.path))

    async def stop(self) -> None:
        tasks = [t for t in (self._accepting, *self._connections) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        if self.path.is_socket():
            self.path.unlink()

    async def _accept_loop(self) -> None:
        """Accept forever; out of descriptors, log once and retry after a pause instead of spinning."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        short_of_descriptors = False
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES and not short_of_descriptors:
                    log.error("control_socket_cannot_accept", error=os.strerror(exc.errno),
                              retry_every_s=ACCEPT_RETRY_S)
                short_of_descriptors = short_of_descriptors or exc.errno in _OUT_OF_RESOURCES
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            if short_of_descriptors:
                log.info("control_socket_accepting_again")
                short_of_descriptors = False
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        """Serve the connection, or answer "too many connections" and close it at once."""
        conn.setblocking(False)
        try:
            pid, uid, gid = peer_credentials(conn)
        except OSError:
            conn.close()
            return
        turned_away = self.caps.admit(uid)
        if turned_away is not None:
            try:
                conn.send(encode_reply(error_reply(ExitCode.ERROR, turned_away)))
            except OSError:
                pass
            conn.close()
            self._log_turned_away(uid, turned_away)
            return
        task = asyncio.create_task(self._serve(conn, pid, uid, gid), name=f"control-connection-{uid}")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    def _log_turned_away(self, uid: int, why: str) -> None:
        self._turned_away += 1
        now = asyncio.get_running_loop().time()
        if now - self._turned_away_logged_at >= TURNED_AWAY_LOG_S:
            log.warning("control_connections_turned_away", count=self._turned_away, last_uid=uid, reason=why)
            self._turned_away, self._turned_away_logged_at = 0, now

    async def _serve(self, conn: socket.socket, pid: int, uid: int, gid: int) -> None:
        lines = LineReader(conn, self.read_deadline_s, self.idle_timeout_s)
        try:
            caller = self._identify(pid, uid, gid)
            while True:
                try:
                    line = await lines.next_line()
                except ConnectionClosing as exc:
                    if exc.reply["exit"] == ExitCode.USAGE:
                        self.refusals.refused(uid)
                    log.warning("control_connection_closed", pid=pid, uid=uid, reason=exc.reply["message"])
                    await self._send(conn, exc.reply)
                    return
                if line is None:
                    return
                await self._send(conn, await self.answer(line, caller))
        except (OSError, TimeoutError) as exc:
            log.warning("control_connection_dropped", pid=pid, uid=uid, error=str(exc) or type(exc).__name__)
        finally:
            conn.close()
            self.caps.release(uid)

    async def answer(self, line: bytes, caller: Caller) -> dict:
        """The reply to one request line: bounds first, then the dispatcher; always a reply, never a raise."""
        if self.refusals.exhausted(caller.uid):
            return error_reply(ExitCode.ERROR, "slow down: too many refused requests; try again in a few seconds")
        try:
            request = parse_request(line)
        except MalformedRequest as exc:
            reply = error_reply(ExitCode.USAGE, f"malformed request: {exc}")
        else:
            try:
                reply = await self._dispatch(request, caller)
            except Exception as exc:  # noqa: BLE001 - the caller gets an answer whatever went wrong
                log.exception("control_request_failed", uid=caller.uid, pid=caller.pid)
                reply = error_reply(ExitCode.ERROR, f"internal error: {type(exc).__name__}: {exc}")
        if reply.get("exit") in _REFUSED:
            self.refusals.refused(caller.uid)
        return reply

    async def _send(self, conn: socket.socket, reply: dict) -> None:
        """Write one reply; a reader that does not take it within the read deadline is dropped."""
        async with asyncio.timeout(self.read_deadline_s):
            await asyncio.get_running_loop().sock_sendall(conn, encode_reply(reply))
