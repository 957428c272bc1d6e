"""The operator panel: a read-only status page for a browser on this PC, served on loopback only.

GET /                   the page (panel_static/index.html and panel.js)
GET /api/status         barrierd's status, the same data as `barrierctl status --json`
GET /api/events?after=N the events after id N (at most 200), for the page's event list
The page asks for the status twice a second and never shows a device state older than two
seconds: when barrierd stops answering, every state cell says "no data" and a banner says since
when. The panel has no login, so it commands nothing and listens on a loopback address only
(the schema refuses any other); commands go through barrierctl, where the caller's Unix identity
gives the role. Any local user of the PC can read it (like the site's status board on the wall):
do not enable it on a PC shared with people who must not see the crossing's state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from config.schema import PanelSection

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.panel")
STATIC = Path(__file__).parent / "panel_static"
EVENTS_PER_REQUEST = 200
STATUS_REUSE_S = 0.1  # one status computation serves every page asking within this long
NO_CACHE = {"Cache-Control": "no-store"}


class Panel:
    """The panel's HTTP server for one site."""

    def __init__(self, cfg: PanelSection, site: Site) -> None:
        self.cfg = cfg
        self.site = site
        self._runner: web.AppRunner | None = None
        self._status_cache: tuple[float, str] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._this_host_only])
        app.router.add_get("/", self._page)
        app.router.add_get("/panel.js", self._script)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.cfg.host, self.cfg.port).start()
        log.info("panel_ready", url=f"http://{self.cfg.host}:{self.cfg.port}/")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _this_host_only(self, request: web.Request, handler) -> web.StreamResponse:
        """Answer only requests addressed to this loopback host and port: a page from another site whose
        name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and is turned away."""
        if request.host not in self._hosts:
            raise web.HTTPMisdirectedRequest(text="this panel answers only on its own loopback address")
        return await handler(request)

    @property
    def _hosts(self) -> set[str]:
        port = self.cfg.port
        return {f"{self.cfg.host}:{port}", f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    async def _page(self, _request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def _script(self, _request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "panel.js", headers=NO_CACHE)

    async def _status(self, _request: web.Request) -> web.Response:
        """The status, computed at most once per STATUS_REUSE_S however many pages ask."""
        now = time.monotonic()
        if self._status_cache is None or now - self._status_cache[0] > STATUS_REUSE_S:
            self._status_cache = (now, json.dumps(self.site.status(), default=str))
        return web.Response(text=self._status_cache[1], content_type="application/json", headers=NO_CACHE)

    async def _events(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after must be a whole number") from None
        if not 0 <= after < 2**63:
            raise web.HTTPBadRequest(text="after must be an event id")
        return web.json_response({"events": self.site.store.recent_events(EVENTS_PER_REQUEST, after)},
                                 headers=NO_CACHE)
