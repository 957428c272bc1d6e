"""End to end: the panel's WebSocket at its bounds: a page that stops reading is dropped, the 101st page is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from tests.e2e.panel_rig import start_panel_site
from tests.support import async_wait_until

pytestmark = pytest.mark.e2e

DROP_PROMISE_S = 2.0  # README: a page that takes no message for 2 s is dropped
MAX_PAGES = 100


@pytest.fixture
def panel(tmp_path, users):
    procs, url = start_panel_site(tmp_path, users)
    yield procs, url
    procs.close()


@dataclass
class Page:
    """A page that reads everything pushed to it (answering pings as a browser does), with arrival times."""

    ws: aiohttp.ClientWebSocketResponse
    statuses: list[tuple[float, dict]] = field(default_factory=list)
    closed: tuple[int, str] | None = None
    task: asyncio.Task | None = None

    async def read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if data["type"] == "status":
                    self.statuses.append((time.monotonic(), data["status"]))
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                self.closed = (message.data, message.extra)
                return


async def open_page(http: aiohttp.ClientSession, url: str) -> Page:
    page = Page(await http.ws_connect(url.replace("http://", "ws://") + "api/live"))
    page.task = asyncio.create_task(page.read())
    return page


def page_that_stops_reading(url: str) -> socket.socket:
    """A WebSocket whose page never reads after the handshake (a hung tab, a cut cable): it answers no ping."""
    host = url.removeprefix("http://").rstrip("/")
    address, port = host.rsplit(":", 1)
    sock = socket.create_connection((address, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /api/live HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # one byte at a time: nothing after the headers is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def log_events(procs, name: str) -> list[dict]:
    lines = [json.loads(line) for line in procs.daemon_log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def gate_state(status: dict) -> str:
    return next(d["state"] for d in status["devices"] if d["name"] == "gate-1")


async def a_page_that_stops_reading_is_dropped_while_the_others_read_on(procs, url: str) -> float:
    async with aiohttp.ClientSession() as http:
        readers = [await open_page(http, url) for _ in range(3)]
        await async_wait_until(lambda: all(p.statuses for p in readers), 5, "every page has a status")
        stalled = await asyncio.to_thread(page_that_stops_reading, url)
        stopped_at = time.monotonic()
        try:
            await async_wait_until(lambda: log_events(procs, "panel_page_dropped"), DROP_PROMISE_S,
                                   "the page that stopped reading dropped")
            dropped_after = time.monotonic() - stopped_at
            dropped = log_events(procs, "panel_page_dropped")
            assert len(dropped) == 1 and "answered no ping" in dropped[0]["reason"], dropped
            assert dropped[0]["pages"] == len(readers)
        finally:
            stalled.close()
        assert (await asyncio.to_thread(procs.ctl, "open", "gate-1"))[0] == 0  # a change after the drop
        await async_wait_until(lambda: all(gate_state(p.statuses[-1][1]) == "open" for p in readers), 10,
                               "every page still reading sees gate-1 open")
        assert all(p.closed is None for p in readers), [p.closed for p in readers]
        for page in readers:
            page.task.cancel()
        return dropped_after


def test_a_page_that_stops_reading_is_dropped_within_two_seconds_and_the_others_read_on(panel):
    procs, url = panel
    dropped_after = asyncio.run(a_page_that_stops_reading_is_dropped_while_the_others_read_on(procs, url))
    print(f"page that stopped reading dropped after {dropped_after:.2f} s")


async def the_101st_page_is_refused(procs, url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        pages = [await open_page(http, url) for _ in range(MAX_PAGES)]
        await async_wait_until(lambda: all(p.statuses for p in pages), 20, "all 100 pages have a status")
        extra = await open_page(http, url)
        await async_wait_until(lambda: extra.closed, 5, "the 101st page closed by the panel")
        assert extra.statuses == [] and log_events(procs, "panel_page_refused")

        await pages[0].ws.close()
        await pages[0].task

        async def one_more_is_taken():
            page = await open_page(http, url)
            await async_wait_until(lambda: page.statuses or page.closed, 5, "the page answered")
            return page if page.statuses else None
        await async_wait_until_async(one_more_is_taken, 5, "a page taken once one of the 100 has closed")
        assert all(p.closed is None for p in pages[1:]), "a page dropped while 100 were open"
        return extra.closed


async def async_wait_until_async(check, timeout_s: float, what: str):
    """Retry the coroutine `check` until it returns something truthy, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s:.1f} s: {what}")


def test_the_101st_page_is_refused_with_a_reason_while_100_are_open(panel):
    procs, url = panel
    code, reason = asyncio.run(the_101st_page_is_refused(procs, url))
    assert code == 1013 and "too many open panels" in reason, (code, reason)  # 1013: try again later
