"""Pages on the panel's /api/live for the benchmarks: readers that time each message, pages that never read, a flooder.

They run on an asyncio loop in a thread of the benchmark (Background), each logged in with its own
session (POST /api/login, the cookie kept in its own jar), as separate browsers would be.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import aiohttp

SLOW_RCVBUF = 4096  # bytes the kernel may hold for a page that never reads (it doubles the figure)
FLOOD_FRAME = "x" * 1000  # the live socket takes messages up to 1024 bytes and ignores them
FLOOD_HTTP_WORKERS = 4


class Background:
    """An asyncio loop in its own thread for the length of a with-block, at the given nice value (Linux sets
    a thread's own priority: the benchmark's other threads keep theirs)."""

    def __init__(self, nice: int = 0) -> None:
        self.nice = nice

    def __enter__(self) -> Background:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="bench-pages", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        self.loop.run_forever()

    def run(self, coro: Coroutine, timeout_s: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self, coro: Coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def __exit__(self, *exc: object) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def logged_in(url: str, user: str, password: str) -> aiohttp.ClientSession:
    """An HTTP client with its own session cookie (the jar takes cookies from an IP address: unsafe=True)."""
    http = aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post("/api/login", json={"user": user, "password": password}) as answer:
        if answer.status != 200:
            await http.close()
            raise RuntimeError(f"panel login refused: {answer.status} {await answer.text()}")
    return http


class Reader:
    """A page that reads every message and answers the panel's pings (as a browser does); with `keep`, each status
    message's receive time (time.time()) and the devices' shown states are kept."""

    def __init__(self, http: aiohttp.ClientSession, *, keep: bool = False) -> None:
        self.http, self.keep = http, keep
        self.messages = 0
        self.seen: list[tuple[float, dict[str, str]]] = []
        self.closed = False

    async def follow(self) -> None:
        try:
            async with self.http.ws_connect("/api/live") as ws:
                async for message in ws:
                    received = time.time()
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    self.messages += 1
                    if self.keep:
                        data = json.loads(message.data)
                        if data["type"] == "status":
                            self.seen.append((received, {d["name"]: d["display"] for d in data["status"]["devices"]}))
        finally:
            self.closed = True
            await self.http.close()


def slow_page(url: str, cookie: str) -> socket.socket:
    """A page that opens /api/live and never reads again: a small receive buffer, nothing taken from it."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)  # before connect: the window follows
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/live HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # one byte at a time: leave every message after the head unread
        if not chunk:
            raise RuntimeError("panel closed a slow page before its WebSocket opened")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"panel refused a WebSocket: {head[:200]!r}")
    return sock


def server_send_queue(url: str, pages: list[socket.socket]) -> int:
    """Bytes the panel's kernel holds for these pages, not yet taken by them (`ss`: Send-Q of its side)."""
    panel_port = urlsplit(url).port
    ports = {page.getsockname()[1] for page in pages}
    lines = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{panel_port} )"], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    # without a state column: Recv-Q Send-Q Local:Port Peer:Port
    return sum(int(f[1]) for f in (line.split() for line in lines) if int(f[3].rsplit(":", 1)[1]) in ports)


def session_cookie(http: aiohttp.ClientSession) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)


class Flooder:
    """A page that reads its messages, sends frames on its live socket as fast as it can, and keeps
    FLOOD_HTTP_WORKERS GET /api/status in flight."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.frames = self.requests = 0

    async def flood(self) -> None:
        try:
            async with self.http.ws_connect("/api/live") as ws:
                workers = [asyncio.create_task(self._statuses()) for _ in range(FLOOD_HTTP_WORKERS)]
                reader = asyncio.create_task(self._drain(ws))
                try:
                    while not ws.closed:
                        await ws.send_str(FLOOD_FRAME)
                        self.frames += 1
                        await asyncio.sleep(0)  # send_str need not wait: let the reading tasks run
                finally:
                    for task in (*workers, reader):
                        task.cancel()
        finally:
            await self.http.close()

    async def _statuses(self) -> None:
        while True:
            async with self.http.get("/api/status") as answer:
                await answer.read()
            self.requests += 1

    @staticmethod
    async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass
