"""The panel's sessions: PAM password check, idle expiry, CSRF tokens and the failed-login limit."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")  # a Unix login name (Debian's default rule)
MAX_PASSWORD_CHARS = 1024
MAX_SESSIONS = 64  # beyond this, the session used least recently is ended
FAILURES_PER_USER = 5  # failed logins per user name within FAILURE_WINDOW_S before it is refused outright
FAILURES_OVERALL = 30  # failed logins of all names together within FAILURE_WINDOW_S
FAILURE_WINDOW_S = 300.0

Clock = Callable[[], float]

PAM_DIRS = (Path("/etc/pam.d"), Path("/usr/lib/pam.d"))  # where Linux-PAM looks for a service's file, in order
SHADOW = Path("/etc/shadow")
# PAM's answers that say no password was checked at all: the PC's set-up failed, not the guard's typing. Codes of
# Linux-PAM's _pam_types.h (pamela names none of them); any other refusal is a wrong user, password or account.
PAM_SYSTEM_ERRORS = {1: "PAM_OPEN_ERR", 2: "PAM_SYMBOL_ERR", 3: "PAM_SERVICE_ERR", 4: "PAM_SYSTEM_ERR",
                     5: "PAM_BUF_ERR", 8: "PAM_CRED_INSUFFICIENT", 9: "PAM_AUTHINFO_UNAVAIL",
                     18: "PAM_NO_MODULE_DATA", 19: "PAM_CONV_ERR", 26: "PAM_ABORT", 28: "PAM_MODULE_UNKNOWN",
                     29: "PAM_BAD_ITEM"}


class PasswordsUncheckable(Exception):
    """PAM could not check a password at all (the site PC's set-up, not the guard's typing); the message says why."""


def pam_service_missing(service: str, dirs: tuple[Path, ...] = PAM_DIRS) -> str | None:
    """Why PAM has no file for `service` (it would quietly use its `other` service instead), or None."""
    if not dirs[0].is_dir() or any((d / service).is_file() for d in dirs):  # no /etc/pam.d: PAM reads /etc/pam.conf
        return None
    return f"PAM has no service {service}: no {dirs[0] / service} (the shipped one is deploy/pam.d/barrier-panel)"


def pam_password_ok(service: str, user: str, password: str) -> str | None:
    """None if PAM `service` accepts `user`'s password (and account), else PAM's reason; PasswordsUncheckable if
    PAM could not check it. Blocks: run it in a thread. Credentials are not set (resetcred=0): barrierd's own
    groups must never change."""
    if (missing := pam_service_missing(service, PAM_DIRS)) is not None:
        raise PasswordsUncheckable(missing)
    try:
        import pamela  # imported here: libpam is loaded only where the panel runs
    except (ImportError, OSError, AttributeError) as exc:
        raise PasswordsUncheckable(f"libpam could not be loaded: {exc}") from exc
    try:
        pamela.authenticate(user, password, service=service, resetcred=0)
    except pamela.PAMError as exc:
        if exc.errno is not None and exc.errno not in PAM_SYSTEM_ERRORS:
            return str(exc)
        raise PasswordsUncheckable(uncheckable_cause(service, exc.errno, exc.message)) from exc
    return None


def uncheckable_cause(service: str, errno: int | None, message: str) -> str:
    """PAM's system error in words, with the usual cause when barrierd's user cannot read /etc/shadow."""
    cause = f"PAM service {service}: {message} ({PAM_SYSTEM_ERRORS.get(errno, 'no PAM code')})"
    if SHADOW.exists() and not os.access(SHADOW, os.R_OK):
        cause += (f"; barrierd (uid {os.geteuid()}) cannot read {SHADOW}: its user needs the group that owns it "
                  "(SupplementaryGroups=shadow in deploy/barrierd.service)")
    return cause


def login_problem(body: object) -> str | None:
    """Why a login request body is not {"user": NAME, "password": TEXT}, or None."""
    if not isinstance(body, dict) or set(body) != {"user", "password"}:
        return 'a login is a JSON object {"user": NAME, "password": TEXT} and nothing else'
    user, password = body["user"], body["password"]
    if not isinstance(user, str) or not USER_NAME.match(user):
        return "user must be a Unix login name"
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD_CHARS or "\0" in password:
        return f"password must be text of 1 to {MAX_PASSWORD_CHARS} characters"
    return None


@dataclass
class Session:
    """One logged-in browser: the user, their Unix ids, the CSRF token its page sends back."""

    token: str
    csrf: str
    user: str
    uid: int
    gid: int
    last_used: float

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


@dataclass
class Sessions:
    """Sessions by cookie token; one unused for `idle_s` is gone, and `on_idle_end` hears of it once."""

    idle_s: float
    clock: Clock = time.monotonic
    on_idle_end: Callable[[Session, float], None] = lambda session, idle_for: None  # (session, seconds idle)
    by_token: dict[str, Session] = field(default_factory=dict)

    def open(self, user: str, uid: int, gid: int) -> Session:
        if len(self.by_token) >= MAX_SESSIONS:
            oldest = min(self.by_token.values(), key=lambda s: s.last_used)
            del self.by_token[oldest.token]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, uid, gid, self.clock())
        self.by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for `token` (its idle time is not restarted: watching is not using)."""
        session = self.by_token.get(token) if token else None
        if session is not None and self._ended_idle(session):
            return None
        return session

    def end_idle(self) -> None:
        """End every session idle for longer than `idle_s` (the sweep: no request need come to notice it)."""
        for session in list(self.by_token.values()):
            self._ended_idle(session)

    def next_end(self) -> float | None:
        """When, on `clock`, the next session ends unless used, or None when there is none."""
        oldest = min((s.last_used for s in self.by_token.values()), default=None)
        return None if oldest is None else oldest + self.idle_s

    def _ended_idle(self, session: Session) -> bool:
        idle_for = self.clock() - session.last_used
        if idle_for < self.idle_s:
            return False
        del self.by_token[session.token]
        self.on_idle_end(session, idle_for)
        return True

    def idle_left(self, session: Session) -> float:
        """Seconds before `session` ends unless a command is sent."""
        return max(0.0, session.last_used + self.idle_s - self.clock())

    def touch(self, session: Session) -> None:
        session.last_used = self.clock()

    def close(self, token: str | None) -> Session | None:
        return self.by_token.pop(token, None) if token else None


@dataclass
class LoginLimiter:
    """Failed logins counted per user name and overall within a sliding window; over either, refused.
    An attempt counts as failed from the moment it is made until it succeeds: guesses sent together
    cannot all pass the check while the first ones wait for PAM."""

    clock: Clock = time.monotonic
    per_user: int = FAILURES_PER_USER
    overall: int = FAILURES_OVERALL
    window_s: float = FAILURE_WINDOW_S
    _failures: deque[tuple[float, str]] = field(default_factory=deque)

    def _forget_old(self) -> None:
        horizon = self.clock() - self.window_s
        while self._failures and self._failures[0][0] < horizon:
            self._failures.popleft()

    def quiet(self) -> bool:
        """No failed login left in the window."""
        self._forget_old()
        return not self._failures

    def refusal(self, user: str) -> str | None:
        """Why a login for `user` is refused without asking PAM, or None."""
        self._forget_old()
        if len(self._failures) >= self.overall:
            return f"too many failed logins on this panel ({len(self._failures)} in {self.window_s:.0f} s); try later"
        mine = sum(1 for _, name in self._failures if name == user)
        if mine >= self.per_user:
            return f"too many failed logins for {user} ({mine} in {self.window_s:.0f} s); try later"
        return None

    def attempt(self, user: str) -> None:
        self._forget_old()
        self._failures.append((self.clock(), user))

    def withdraw(self, user: str) -> None:
        """The user's latest attempt was not a guess (the password could not be checked): not counted."""
        for index in range(len(self._failures) - 1, -1, -1):
            if self._failures[index][1] == user:
                del self._failures[index]
                return

    def succeeded(self, user: str) -> None:
        """The user's password was right: their failures (this attempt's too) are forgotten."""
        self._failures = deque(f for f in self._failures if f[1] != user)
