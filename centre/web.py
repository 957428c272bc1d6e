"""The centre's read-only web page (aiohttp): the fleet's picture pushed live over Server-Sent Events; no commands.

GET /                  the page (centre/static: index.html, centre.js, centre.css; nothing from elsewhere)
GET /api/picture       the picture, as `barrier-centre status --json` prints it, with the link to the broker
GET /api/live          Server-Sent Events: the picture on every message heard, and every second (staleness moves)
Served on a loopback address, or on another one over TLS only (the site panel's rule, controller/panel.py). On
loopback every request must be addressed to a loopback name (Host: against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import ssl
from pathlib import Path

import structlog
from aiohttp import web

from centre.fleet import Fleet
from centre.listen import Listener

log = structlog.get_logger("centre.web")
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"centre.js": "application/javascript", "centre.css": "text/css"}
PUSH_EVERY_S = 1.0  # at least this often, so that a value turning stale is shown stale
COALESCE_S = 0.1  # a burst of messages is one push
MAX_LIVE_PAGES = 100
NO_CACHE = {"Cache-Control": "no-store"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """As config.schema.is_loopback (the site panel's rule)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, tls_cert: str | None, tls_key: str | None) -> None:
    """ValueError unless the address is loopback or both TLS files are given."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    if not is_loopback(host) and tls_cert is None:
        raise ValueError(f"without TLS the page is served on a loopback address only (127.0.0.1, ::1), not {host!r}; "
                         "another address needs --tls-cert and --tls-key")


class CentrePage:
    """The page and its live push for one Fleet."""

    def __init__(self, fleet: Fleet, listener: Listener, host: str, port: int, tls: bool) -> None:
        self.fleet, self.listener = fleet, listener
        self.loopback = is_loopback(host)
        self.hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}
        self.live_pages = 0
        self._heard = asyncio.Event()
        listener.on_message = self._on_message
        self.scheme = "https" if tls else "http"

    def _on_message(self) -> None:
        heard, self._heard = self._heard, asyncio.Event()
        heard.set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=4096)
        app.router.add_get("/", self._page)
        app.router.add_get("/{name:centre\\.js|centre\\.css}", self._static)
        app.router.add_get("/api/picture", self._picture)
        app.router.add_get("/api/live", self._live)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        if self.loopback and request.host not in self.hosts:
            return web.json_response({"error": "this page answers only on its own address"}, status=421)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def picture_json(self) -> str:
        picture = self.fleet.picture()
        picture["link"] = {"connected": self.listener.connected, "broker": str(self.listener.broker),
                           "filter": self.listener.topic_filter, "error": self.listener.error}
        return json.dumps(picture, ensure_ascii=False)

    async def _page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return web.FileResponse(STATIC / name, headers={**NO_CACHE, "Content-Type": STATIC_FILES[name]})

    async def _picture(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.picture_json(), content_type="application/json", headers=NO_CACHE)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        if self.live_pages >= MAX_LIVE_PAGES:
            return web.json_response({"error": f"at most {MAX_LIVE_PAGES} live pages"}, status=503)
        response = web.StreamResponse(headers={**NO_CACHE, **SECURITY_HEADERS, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.live_pages += 1
        try:
            while True:
                await response.write(f"data: {self.picture_json()}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUSH_EVERY_S):
                        await self._heard.wait()
                        await asyncio.sleep(COALESCE_S)
        except (ConnectionResetError, ConnectionError):
            return response
        finally:
            self.live_pages -= 1


async def serve(fleet: Fleet, listener: Listener, host: str, port: int, tls_cert: str | None,
                tls_key: str | None) -> None:
    """Run the page and the subscription until cancelled."""
    check_listen(host, tls_cert, tls_key)
    tls = None
    if tls_cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(tls_cert, tls_key)
    page = CentrePage(fleet, listener, host, port, tls is not None)
    runner = web.AppRunner(page.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
        log.info("centre_web_ready", url=f"{page.scheme}://{host}:{port}/")
        print(f"barrier-centre web: {page.scheme}://{host}:{port}/", flush=True)
        await listener.run()
    finally:
        await runner.cleanup()
