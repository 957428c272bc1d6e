"""The panel's login, logout, session and command endpoints: the control socket's requests, from a browser."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from config.schema import PanelSection, is_loopback
from controller.auth import Caller, role_for
from controller.commands import Registry
from controller.exit_codes import ExitCode
from controller.panel_auth import (LoginLimiter, PasswordsUncheckable, Session, Sessions, login_problem,
                                   pam_password_ok)
from controller.request_bounds import MAX_REQUEST_BYTES, MalformedRequest, parse_request
from controller.states import Role

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.panel")
COOKIE = "barrier_panel_session"
CSRF_HEADER = "X-CSRF-Token"
NO_CACHE = {"Cache-Control": "no-store"}
HTTP_STATUS = {ExitCode.USAGE: 400, ExitCode.NOT_AUTHORISED: 403}  # any other exit: 200, the reply says it

PasswordCheck = Callable[[str, str, str], "str | None"]  # (service, user, password) -> None or PAM's reason
UNCHECKABLE = "the site PC could not check passwords"
LIMITED_RECORDS = 100  # names whose refusal by the login limit is recorded, per window of the limiter
SWEEP_GAP_S = 0.001  # the idle sweep never wakes sooner than this after the last one


def refusal(status: int, message: str) -> web.Response:
    """A 4xx whose JSON body says why, for the page to show and scripts to read."""
    return web.json_response({"error": message}, status=status, headers=NO_CACHE)


class PanelApi:
    """Sessions over PAM and the [access] table; commands through the same registry as the control socket."""

    def __init__(self, cfg: PanelSection, site: Site, registry: Registry, *,
                 password_ok: PasswordCheck = pam_password_ok, clock: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self.site = site
        self.registry = registry
        self.password_ok = password_ok
        self.sessions = Sessions(cfg.idle_timeout_s, clock or _loop_time, on_idle_end=self._idle_ended)
        self._sweep_timer: asyncio.TimerHandle | None = None
        self.limiter = LoginLimiter(**({"clock": clock} if clock else {}))
        self._limited_recorded: set[str] = set()  # names whose refusal by the limit is already in the audit trail
        self._uncheckable_recorded: str | None = None  # why PAM cannot check passwords, once in the audit trail
        self.daemon_uid = os.geteuid()
        self.reading_needs_login = not is_loopback(cfg.host)  # on loopback anyone on this PC may read

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/login", self.login)
        app.router.add_post("/api/logout", self.logout)
        app.router.add_get("/api/session", self.session_info)
        app.router.add_post("/api/command", self.command)

    def stop(self) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None

    def session_of(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def reader(self, request: web.Request) -> Caller:
        """Who reads through the registry: the session's user, or (reading on loopback needs no login) a viewer
        standing for the booth's screen."""
        session = self.session_of(request)
        if session is None:
            return Caller(uid=-1, gid=-1, pid=os.getpid(), user="panel screen (no login)", role=Role.VIEWER)
        return Caller(uid=session.uid, gid=session.gid, pid=os.getpid(), user=session.user, role=self.role_of(session))

    def role_of(self, session: Session) -> Role:
        """Read again at every use, from the same [access] table as the control socket."""
        return role_for(session.uid, session.gid, self.site.cfg.access, self.daemon_uid)

    async def login(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        if (problem := login_problem(body)) is not None:
            return refusal(400, problem)
        user, password = body["user"], body["password"]
        if self.limiter.quiet():
            self._limited_recorded.clear()
        if (limited := self.limiter.refusal(user)) is not None:
            # once per name while limited, and at most LIMITED_RECORDS names until the limiter's window has
            # no failure left: a flood of made-up names fills neither memory nor the store
            if user not in self._limited_recorded and len(self._limited_recorded) < LIMITED_RECORDS:
                self._limited_recorded.add(user)
                self._audit(user, "login refused: too many failed logins", reason=limited)
            return refusal(429, limited)
        self._limited_recorded.discard(user)
        self.limiter.attempt(user)  # counted from now: logins sent at once cannot all reach PAM
        try:
            pam_reason = await asyncio.to_thread(self.password_ok, self.cfg.pam_service, user, password)
        except PasswordsUncheckable as exc:  # nobody typed a wrong password: not counted by the limiter
            self.limiter.withdraw(user)
            self._passwords_uncheckable(user, str(exc))
            return refusal(503, f"{UNCHECKABLE} (a fault of the PC, not of the password): tell a technician; "
                                "the cause is in the event log")
        self._passwords_checked_again()
        if pam_reason is not None:
            self._audit(user, "login refused: wrong user or password", reason=pam_reason)
            return refusal(401, "wrong user or password")
        self.limiter.succeeded(user)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            self._audit(user, "login refused: not a user of this PC")
            return refusal(401, "wrong user or password")
        role = role_for(entry.pw_uid, entry.pw_gid, self.site.cfg.access, self.daemon_uid)
        if role is Role.NONE:
            self._audit(user, "login refused: no role on this site")
            return refusal(403, f"{user} has no role on this site (the [access] table of the site file)")
        session = self.sessions.open(user, entry.pw_uid, entry.pw_gid)
        self._sweep_when_due()
        self._audit(user, f"logged in on the panel as {role.label}", uid=entry.pw_uid)
        reply = web.json_response({"csrf": session.csrf, "user": user, "role": role.label,
                                   "idle_timeout_s": self.cfg.idle_timeout_s,
                                   "reading_needs_login": self.reading_needs_login}, headers=NO_CACHE)
        reply.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", secure=self.cfg.tls, path="/")
        return reply

    def session_with_csrf(self, request: web.Request, not_logged_in: str):
        """The request's session if it also carries the session's CSRF token, else the refusal to send."""
        session = self.session_of(request)
        if session is None:
            return refusal(401, not_logged_in)
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            return refusal(403, f"missing or wrong {CSRF_HEADER} header")
        return session

    async def logout(self, request: web.Request) -> web.Response:
        session = self.session_with_csrf(request, "not logged in")
        if isinstance(session, web.Response):
            return session
        self.sessions.close(session.token)
        self._audit(session.user, "logged out of the panel", uid=session.uid)
        reply = web.json_response({"user": session.user, "logged_out": True}, headers=NO_CACHE)
        reply.del_cookie(COOKIE, path="/")
        return reply

    async def session_info(self, request: web.Request) -> web.Response:
        session = self.session_of(request)
        if session is None:
            return refusal(401, "not logged in")
        return web.json_response({"user": session.user, "role": self.role_of(session).label, "csrf": session.csrf,
                                  "idle_timeout_s": self.cfg.idle_timeout_s,
                                  "idle_left_s": round(self.sessions.idle_left(session), 3),
                                  "reading_needs_login": self.reading_needs_login}, headers=NO_CACHE)

    async def command(self, request: web.Request) -> web.Response:
        """One control request, `{"command": ..., "args": {...}}`, answered with the control socket's reply."""
        session = self.session_with_csrf(request, "not logged in (or the session expired): log in first")
        if isinstance(session, web.Response):
            return session
        if request.content_type != "application/json":
            return refusal(415, "a command is sent as application/json")
        raw = await request.read()
        try:
            parsed = parse_request(raw)
        except MalformedRequest as exc:
            return refusal(400, f"malformed request: {exc}")
        self.sessions.touch(session)
        caller = Caller(uid=session.uid, gid=session.gid, pid=os.getpid(), user=session.user,
                        role=self.role_of(session))
        reply = await self.registry.dispatch(self.site, parsed, caller)
        return web.json_response(reply.as_dict(), status=HTTP_STATUS.get(reply.code, 200), headers=NO_CACHE,
                                 dumps=lambda data: json.dumps(data, default=str))

    def _sweep_when_due(self) -> None:
        """One timer, set for when the next session would end idle: its end is recorded then, not when someone
        comes back with its cookie. A timer that finds the session used since is set again for the new end."""
        if self._sweep_timer is not None or (end := self.sessions.next_end()) is None:
            return
        delay = max(end - self.sessions.clock(), SWEEP_GAP_S)
        self._sweep_timer = asyncio.get_running_loop().call_later(delay, self._sweep)

    def _sweep(self) -> None:
        self._sweep_timer = None
        self.sessions.end_idle()
        self._sweep_when_due()

    def _idle_ended(self, session: Session, idle_for: float) -> None:
        self._audit(session.user, f"session ended: idle for {int(idle_for)} s", uid=session.uid)

    def _passwords_uncheckable(self, user: str, cause: str) -> None:
        """Recorded once per cause: guards trying again do not fill the store."""
        if cause != self._uncheckable_recorded:
            self._uncheckable_recorded = cause
            self.site.store.record_event("panel", self.cfg.pam_service, f"{UNCHECKABLE}: {cause}", user=user)
            log.error("panel_passwords_uncheckable", service=self.cfg.pam_service, cause=cause, user=user)

    def _passwords_checked_again(self) -> None:
        if self._uncheckable_recorded is not None:
            self._uncheckable_recorded = None
            self.site.store.record_event("panel", self.cfg.pam_service, "the site PC checks passwords again")
            log.info("panel_passwords_checked_again", service=self.cfg.pam_service)

    def _audit(self, user: str, summary: str, **data) -> None:
        self.site.store.record_event("panel", user, summary, **data)
        log.info("panel_login", user=user, summary=summary, **data)


def _loop_time() -> float:
    """The event loop's clock: the sessions' idle times and the sweep's timer count on the same one."""
    return asyncio.get_running_loop().time()


async def _json_body(request: web.Request) -> object:
    """The request's JSON body, or the 4xx that says why there is none."""
    if request.content_type != "application/json":
        return refusal(415, "send application/json")
    raw = await request.read()
    if len(raw) > MAX_REQUEST_BYTES:
        return refusal(413, f"request too large: at most {MAX_REQUEST_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return refusal(400, f"malformed request: not JSON ({exc.__class__.__name__})")
