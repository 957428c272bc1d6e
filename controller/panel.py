"""The guard's panel: an HTTP server (aiohttp) on loopback, or on another address over TLS only.

GET  /                   the page (panel_static/index.html, panel.js, panel.css)
GET  /api/status         barrierd's status, the same data as `barrierctl status --json`
GET  /api/events?after=N the events after id N (at most 200), for the page's event list
GET  /api/layout         the lanes as the page draws them, from the site file (no per-site code)
GET  /api/health[?device=NAME]  the `health` request's reply (condition monitoring), through the registry
GET  /api/live           WebSocket: the status pushed on every change (controller/panel_live.py)
POST /api/login, /api/logout; GET /api/session; POST /api/command   (controller/panel_api.py)
Reading needs no login on a loopback address (like the status board on the booth's wall); on any
other address it needs a session. Acting always does, and goes through the control socket's registry.
Every request must be addressed to the panel's own names (Host: against DNS rebinding) and every
state-changing one must come from its own page (Origin) with the session's CSRF token.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from config.schema import PanelSection, SiteConfig, is_loopback
from controller.commands import Registry
from controller.panel_api import HTTP_STATUS, NO_CACHE, PanelApi, PasswordCheck, refusal
from controller.panel_auth import pam_password_ok
from controller.panel_live import LivePush
from controller.request_bounds import MAX_REQUEST_BYTES
from hal.kinds import KINDS

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.panel")
STATIC = Path(__file__).parent / "panel_static"
STATIC_FILES = {"panel.js": "application/javascript", "panel.css": "text/css", "lanes.js": "application/javascript",
                "health.js": "application/javascript", "vendor/uPlot.iife.min.js": "application/javascript",
                "vendor/uPlot.min.css": "text/css"}  # vendor/: uPlot, see vendor/README.md
EVENTS_PER_REQUEST = 200
TRAVEL_ORDER = ("signal", "blocker", "boom", "gate")  # as an arriving vehicle meets them
STATUS_REUSE_S = 0.1  # one status computation serves every page asking within this long
SAFE_METHODS = frozenset({"GET", "HEAD"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def site_layout(cfg: SiteConfig) -> dict:
    """What the page draws, from the site file alone: each lane's devices in the order a vehicle meets
    them (TRAVEL_ORDER), the airlock pairs, the devices in no lane, and each kind's states in a guard's words."""
    kinds = {d.name: d.kind for d in cfg.device}
    lanes = [{"name": lane.name,
              "devices": [{"name": name, "role": role, "kind": kinds[name]}
                          for role in TRAVEL_ORDER for name in [lane.members().get(role)] if name]}
             for lane in cfg.lane]
    in_lanes = {d["name"] for lane in lanes for d in lane["devices"]}
    return {"site": cfg.site.name, "lanes": lanes,
            "words": {name: dict(spec.state_words) for name, spec in KINDS.items()},  # raised / lowered ...
            "airlocks": [list(rule.devices) for rule in cfg.interlock if rule.kind == "never_both_open"],
            "others": [{"name": d.name, "kind": d.kind} for d in cfg.device if d.name not in in_lanes]}


class Panel:
    """The panel's HTTP server for one site."""

    def __init__(self, cfg: PanelSection, site: Site, registry: Registry, *,
                 password_ok: PasswordCheck = pam_password_ok) -> None:
        self.cfg = cfg
        self.site = site
        self.api = PanelApi(cfg, site, registry, password_ok=password_ok)
        self.live = LivePush(site)
        self._runner: web.AppRunner | None = None
        self._status_cache: tuple[float, str] | None = None
        self.scheme = "https" if cfg.tls else "http"
        self.hosts = self._own_hosts()
        self.origins = {f"{self.scheme}://{host}" for host in self.hosts}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._own_host_and_origin, self._security_headers],
                              client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self._page)
        app.router.add_get("/{name:" + "|".join(re.escape(name) for name in STATIC_FILES) + "}", self._static)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/layout", self._layout)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/live", self._live)
        self.api.add_routes(app)
        return app

    async def start(self) -> None:
        tls = None
        if self.cfg.tls:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            tls.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.cfg.host, self.cfg.port, ssl_context=tls).start()
        self.live.start()
        log.info("panel_ready", url=f"{self.scheme}://{self.cfg.host}:{self.cfg.port}/")

    async def stop(self) -> None:
        self.api.stop()
        await self.live.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _own_hosts(self) -> set[str]:
        port = self.cfg.port
        names = {self.cfg.host, *self.cfg.server_names}
        if is_loopback(self.cfg.host):
            names |= {"127.0.0.1", "localhost", "[::1]"}
        hosts = {f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}" for n in names}
        if port == (443 if self.cfg.tls else 80):  # browsers leave the default port out of Host and Origin
            hosts |= {h.rsplit(":", 1)[0] for h in hosts}
        return hosts

    @web.middleware
    async def _own_host_and_origin(self, request: web.Request, handler) -> web.StreamResponse:
        """Only requests addressed to this panel's own names (a page whose name was re-pointed at this
        address, DNS rebinding, still sends its own); a state-changing request or a WebSocket only from
        the panel's own page: an Origin, when the browser sends one, must be the panel's."""
        if request.host not in self.hosts:
            return refusal(421, "this panel answers only on its own address")
        origin = request.headers.get("Origin")
        changes_state = request.method not in SAFE_METHODS or request.path == "/api/live"
        if changes_state and origin is not None and origin not in self.origins:
            log.warning("panel_foreign_origin", origin=origin[:200], path=request.path)
            return refusal(403, "refused: this request comes from another site's page (Origin)")
        return await handler(request)

    @web.middleware
    async def _security_headers(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 4xx (too large, not found, ...): JSON like ours
            if exc.status < 400:
                raise
            response = refusal(exc.status, exc.reason)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def may_read(self, request: web.Request) -> bool:
        """On loopback anyone on this PC may read; elsewhere only a logged-in user."""
        return not self.api.reading_needs_login or self.api.session_of(request) is not None

    async def _page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return web.FileResponse(STATIC / name, headers={**NO_CACHE, "Content-Type": STATIC_FILES[name]})

    def _status_json(self) -> str:
        """The status, computed at most once per STATUS_REUSE_S however many pages ask."""
        now = time.monotonic()
        if self._status_cache is None or now - self._status_cache[0] > STATUS_REUSE_S:
            self._status_cache = (now, json.dumps(self.site.status(), default=str))
        return self._status_cache[1]

    async def _status(self, request: web.Request) -> web.Response:
        if not self.may_read(request):
            return refusal(401, "log in to read the status")
        return web.Response(text=self._status_json(), content_type="application/json", headers=NO_CACHE)

    async def _layout(self, request: web.Request) -> web.Response:
        if not self.may_read(request):
            return refusal(401, "log in to read the layout")
        return web.json_response(site_layout(self.site.cfg), headers=NO_CACHE)

    async def _health(self, request: web.Request) -> web.Response:
        """The control socket's `health` reply, asked through the registry as the session's user (on loopback
        without a session: as a viewer); ?device=NAME for one device."""
        if not self.may_read(request):
            return refusal(401, "log in to read the condition of the devices")
        args = {"device": request.query["device"]} if "device" in request.query else {}
        reply = await self.api.registry.dispatch(self.site, {"command": "health", "args": args},
                                                 self.api.reader(request))
        return web.json_response(reply.as_dict(), status=HTTP_STATUS.get(reply.code, 200), headers=NO_CACHE,
                                 dumps=lambda data: json.dumps(data, default=str))

    async def _events(self, request: web.Request) -> web.Response:
        if not self.may_read(request):
            return refusal(401, "log in to read the events")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return refusal(400, "after must be a whole number")
        if not 0 <= after < 2**63:
            return refusal(400, "after must be an event id")
        return web.json_response({"events": self.site.store.recent_events(EVENTS_PER_REQUEST, after)},
                                 headers=NO_CACHE)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        if not self.may_read(request):
            return refusal(401, "log in to follow the status")
        return await self.live.serve(request, allowed=lambda: self.may_read(request))
