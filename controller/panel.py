"""The operator panel: a read-only status page for a browser on this PC, served on loopback only.

GET /                   the page (panel_static/index.html and panel.js)
GET /api/status         barrierd's status, the same data as `barrierctl status --json`
GET /api/events?after=N the events after id N (at most 200), for the page's event list
The page asks for the status twice a second and never shows a device state older than two
seconds: when barrierd stops answering, every state cell says "no data" and a banner says since
when. The panel has no login, so it commands nothing and listens on a loopback address only
(the schema refuses any other); commands go through barrierctl, where the caller's Unix identity
gives the role.
"""

from __future__ import annotations

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
NO_CACHE = {"Cache-Control": "no-store"}


class Panel:
    """The panel's HTTP server for one site."""

    def __init__(self, cfg: PanelSection, site: Site) -> None:
        self.cfg = cfg
        self.site = site
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
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

    async def _page(self, _request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def _script(self, _request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "panel.js", headers=NO_CACHE)

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.site.status(), headers=NO_CACHE)

    async def _events(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after must be a whole number") from None
        return web.json_response({"events": self.site.store.recent_events(EVENTS_PER_REQUEST, after)},
                                 headers=NO_CACHE)
