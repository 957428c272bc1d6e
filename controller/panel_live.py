"""The status pushed to every open panel over a WebSocket, on each recorded event; a slow page is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
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
ALIVE = json.dumps({"type": "alive"})


class _Client:
    """One open page: holds only the latest message, so a slow reader skips states, never queues them."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.latest: str | None = None
        self.ready = asyncio.Event()

    def offer(self, text: str) -> None:
        self.latest = text
        self.ready.set()

    async def send_forever(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            text, self.latest = self.latest, None
            if text is not None:
                await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT_S)


class LivePush:
    """One task computes the status once for every page; each page's own task sends it."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.clients: set[_Client] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_status: str | None = None
        self.dropped = 0  # pages dropped for being too slow

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
            await client.ws.close()

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

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """One page's WebSocket: the status at once, then every change; what the page sends is ignored."""
        ws = web.WebSocketResponse(max_msg_size=1024, heartbeat=None)
        await ws.prepare(request)
        if len(self.clients) >= MAX_CLIENTS:
            await ws.close(code=1013, message=b"too many open panels")
            return ws
        client = _Client(ws)
        client.offer(self.status_message())
        self.clients.add(client)
        sender = asyncio.create_task(client.send_forever(), name="panel-live-send")
        reader = asyncio.create_task(self._drain(ws), name="panel-live-read")
        try:
            done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and isinstance(sender.exception(), TimeoutError):
                self.dropped += 1
                log.warning("panel_page_dropped", reason=f"took no message for {SEND_TIMEOUT_S} s")
        finally:
            self.clients.discard(client)
            for task in (sender, reader):
                task.cancel()
            await ws.close()
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return
