"""The panel's end-to-end rig: real Unix users (PAM), a site file granting them roles, an HTTP client with a cookie."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import Processes, site_copy
from tests.support import REPO, free_port

ROLES = ("viewer", "operator", "technician")
PAM_FILE = REPO / "deploy" / "pam.d" / "barrier-panel"
PAM_DIR = Path("/etc/pam.d")


@dataclass
class UnixUsers:
    """One real user per role, and one with no role, each with a password, and the shipped PAM service file
    installed under a name of its own (deploy/pam.d/barrier-panel as /etc/pam.d/barrier-panel-TAG); removed by
    `remove`."""

    names: dict[str, str] = field(default_factory=dict)  # role (or "none") -> user name
    passwords: dict[str, str] = field(default_factory=dict)  # user name -> password
    pam_service: str = ""

    @classmethod
    def create(cls) -> UnixUsers:
        tag = secrets.token_hex(3)
        users = cls(pam_service=f"barrier-panel-{tag}")
        (PAM_DIR / users.pam_service).write_text(PAM_FILE.read_text())
        for role in (*ROLES, "none"):
            name = f"pnl{role[:4]}{tag}"
            password = secrets.token_urlsafe(12)
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
            users.names[role] = name
            users.passwords[name] = password
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        return users

    def remove(self) -> None:
        for name in self.names.values():
            subprocess.run(["userdel", name], check=False, capture_output=True)
        (PAM_DIR / self.pam_service).unlink(missing_ok=True)


def panel_site_file(tmp: Path, users: UnixUsers, port: int, extra: str = "") -> Path:
    """The demo site with the users in its [access] table and a [panel] on loopback at `port` checking passwords
    with the users' PAM service."""
    site = site_copy(tmp)
    text = site.read_text()
    for role in ROLES:
        text = re.sub(rf'(?m)^{role} = \[', f'{role} = ["{users.names[role]}", ', text)
    panel = f'host = "127.0.0.1"\nport = {port}\npam_service = "{users.pam_service}"\n{extra}'
    site.write_text(f"{text}\n[panel]\n{panel}")
    return site


def start_panel_site(tmp: Path, users: UnixUsers, extra: str = "") -> tuple[Processes, str]:
    port = free_port()
    procs = Processes(tmp=tmp, site=panel_site_file(tmp, users, port, extra))
    procs.start_sim()
    procs.start_daemon()
    return procs, f"http://127.0.0.1:{port}/"


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict


class PanelClient:
    """What a script does with the panel: log in, keep the cookie and the CSRF token, send commands."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cookie: str | None = None
        self.csrf: str | None = None

    def request(self, method: str, path: str, body: object = None, *, raw: bytes | None = None,
                headers: dict | None = None, content_type: str = "application/json") -> Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": content_type} if data is not None else {}
        if self.cookie:
            sent["Cookie"] = self.cookie
        if self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                         headers={k: v for k, v in sent.items() if v is not None})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                status, text, got = reply.status, reply.read(), dict(reply.headers)
        except urllib.error.HTTPError as refused:
            status, text, got = refused.code, refused.read(), dict(refused.headers)
        cookie = got.get("Set-Cookie")
        if cookie and cookie.startswith("barrier_panel_session="):
            self.cookie = cookie.split(";", 1)[0]
        return Answer(status, json.loads(text) if text else {}, got)

    def login(self, user: str, password: str) -> Answer:
        answer = self.request("POST", "/api/login", {"user": user, "password": password})
        if answer.status == 200:
            self.csrf = answer.body["csrf"]
        return answer

    def command(self, command: str, **args) -> Answer:
        return self.request("POST", "/api/command", {"command": command, "args": args})
