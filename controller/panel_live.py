"""The status pushed to every open panel over a WebSocket, on each recorded event; a silent or slow page is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.panel")
MAX_CLIENTS = 100
TICK_S = 0.25  # positions of travelling devices, and otherwise a heartbeat: the page counts silence
MIN_GAP_S = 0.02  # at most one status computation this often, however many events arrive
SEND_TIMEOUT_S = 2.0  # a page that has not taken a message in this long is dropped
PING_EVERY_S = 0.25  # a ping at most this often, answered by the browser itself (not the page's script)
SILENT_LIMIT_S = 1.0  # a page that answered no ping in this long (it stopped reading) is dropped: within 2 s
CLOSE_TIMEOUT_S = 1.0  # how long a closing page may take to answer the close
GOING_AWAY, POLICY, TRY_LATER = 1001, 1008, 1013  # WebSocket close codes (RFC 6455, IANA registry)
TOO_MANY_PAGES = "too many open panels: close one and try again"
SESSION_ENDED = "the session ended: log in again"
ALIVE = json.dumps({"type": "alive"})


class PageDropped(Exception):
    """Why the panel closes a page's WebSocket, with the close code the page gets."""

    def __init__(self, reason: str, code: int = GOING_AWAY) -> None:
        super().__init__(reason)
        self.code = code


class _Client:
    """One open page: holds only the latest message, so a slow reader skips states, never queues them."""

    def __init__(self, ws: web.WebSocketResponse, allowed: Callable[[], bool]) -> None:
        self.ws = ws
        self.allowed = allowed  # may this page still read (its session, off loopback)
        self.latest: str | None = None
        self.ready = asyncio.Event()
        self.heard = self.pinged = time.monotonic()  # the page's last frame (a pong, or anything); our last ping

    def offer(self, text: str) -> None:
        if text is ALIVE and self.latest is not None:
            return  # "nothing changed" never stands in for a status the page has not been sent yet
        self.latest = text
        self.ready.set()

    async def send_forever(self) -> None:
        """The latest message each time one is offered (at least every TICK_S), and a ping now and then."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            now = time.monotonic()
            if now - self.heard > SILENT_LIMIT_S:
                raise PageDropped(f"answered no ping for {SILENT_LIMIT_S} s")
            if not self.allowed():
                raise PageDropped(SESSION_ENDED, POLICY)
            text, self.latest = self.latest, None
            try:
                if text is not None:
                    await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT_S)
                if now - self.pinged >= PING_EVERY_S:
                    self.pinged = now
                    await asyncio.wait_for(self.ws.ping(), SEND_TIMEOUT_S)
            except TimeoutError:
                raise PageDropped(f"took no message for {SEND_TIMEOUT_S} s") from None

    async def read_forever(self) -> None:
        """What the page sends is ignored, but every frame it sends (pongs too) says it still reads."""
        async for message in self.ws:
            self.heard = time.monotonic()
            if message.type == WSMsgType.PING:
                await self.ws.pong(message.data)
            elif message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return


class LivePush:
    """One task computes the status once for every page; each page's own task sends it."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.clients: set[_Client] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_status: str | None = None
        self.dropped = 0  # pages dropped for being silent, too slow or logged out

    def _on_event(self, _event: dict) -> None:
        self._wake.set()

    def start(self) -> None:
        self.site.store.listeners.append(self._on_event)
        self._task = asyncio.create_task(self._broadcast(), name="panel-live")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.site.store.listeners.remove(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            await self._close(client.ws, GOING_AWAY, "barrierd is stopping")

    def status_message(self) -> str:
        return json.dumps({"type": "status", "sent": time.time(), "status": self.site.status()}, default=str)

    async def _broadcast(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()
            if self.clients:
                self._push()
            await asyncio.sleep(MIN_GAP_S)

    def _push(self) -> None:
        status = json.dumps(self.site.status(), default=str)
        if status == self._last_status:
            text = ALIVE
        else:
            self._last_status = status
            text = f'{{"type": "status", "sent": {time.time()}, "status": {status}}}'
        for client in self.clients:
            client.offer(text)

    async def serve(self, request: web.Request, allowed: Callable[[], bool]) -> web.StreamResponse:
        """One page's WebSocket: the status at once, then every change, while `allowed()` and the page reads."""
        ws = web.WebSocketResponse(max_msg_size=1024, autoping=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        if len(self.clients) >= MAX_CLIENTS:
            log.warning("panel_page_refused", reason=TOO_MANY_PAGES, pages=len(self.clients))
            await self._close(ws, TRY_LATER, TOO_MANY_PAGES)
            return ws
        client = _Client(ws, allowed)
        client.offer(self.status_message())
        self.clients.add(client)
        sender = asyncio.create_task(client.send_forever(), name="panel-live-send")
        reader = asyncio.create_task(client.read_forever(), name="panel-live-read")
        code, reason = 1000, ""
        try:
            done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and isinstance(dropped := sender.exception(), PageDropped):
                self.dropped += 1
                code, reason = dropped.code, str(dropped)
                log.warning("panel_page_dropped", reason=reason, pages=len(self.clients) - 1)
        finally:
            self.clients.discard(client)
            for task in (sender, reader):
                task.cancel()
            await asyncio.gather(sender, reader, return_exceptions=True)
            await self._close(ws, code, reason)
        return ws

    @staticmethod
    async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
        """Close with a code and reason the page can show; a page that does not answer is cut off."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await ws.close(code=code, message=reason.encode())
