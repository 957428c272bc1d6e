"""The panel's end-to-end rig: real Unix users (PAM), a site file granting them roles, an HTTP(S) client with a cookie."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def panel_site_file(tmp: Path, users: UnixUsers, port: int, extra: str = "", host: str = "127.0.0.1") -> Path:
    """The demo site with the users in its [access] table and a [panel] at `host`:`port` checking passwords with
    the users' PAM service (`extra`: more keys)."""
    site = site_copy(tmp)
    text = site.read_text()
    for role in ROLES:
        text = re.sub(rf'(?m)^{role} = \[', f'{role} = ["{users.names[role]}", ', text)
    panel = f'host = "{host}"\nport = {port}\npam_service = "{users.pam_service}"\n{extra}'
    site.write_text(f"{text}\n[panel]\n{panel}")
    return site


def start_panel_site(tmp: Path, users: UnixUsers, extra: str = "") -> tuple[Processes, str]:
    port = free_port()
    procs = Processes(tmp=tmp, site=panel_site_file(tmp, users, port, extra))
    procs.start_sim()
    procs.start_daemon()
    return procs, f"http://127.0.0.1:{port}/"


def start_tls_panel_site(tmp: Path, users: UnixUsers, address: str,
                         extra: str = "") -> tuple[Processes, str, ssl.SSLContext]:
    """The panel on a non-loopback `address` over HTTPS, with a certificate made for it (`extra`: more [panel]
    keys); a client context that trusts that certificate alone."""
    cert, key = certificate_for(tmp, address)
    port = free_port()
    tls = f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n{extra}'
    procs = Processes(tmp=tmp, site=panel_site_file(tmp, users, port, tls, host=address))
    procs.start_sim()
    procs.start_daemon()
    return procs, f"https://{address}:{port}/", ssl.create_default_context(cafile=str(cert))


def certificate_for(tmp: Path, address: str) -> tuple[Path, Path]:
    """A self-signed certificate naming `address` (its subjectAltName), and its key; PEM files under `tmp`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"barrier panel {address}")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "panel.pem", tmp / "panel.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def own_addresses() -> list[str]:
    """This host's IPv4 addresses that are not loopback (what `ip` lists with global scope)."""
    out = subprocess.run(["ip", "-json", "-4", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    return [a["local"] for link in json.loads(out) for a in link.get("addr_info", [])
            if not ipaddress.ip_address(a["local"]).is_loopback]


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict


class PanelClient:
    """What a script does with the panel: log in, keep the cookie and the CSRF token, send commands."""

    def __init__(self, url: str, tls: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.tls = tls  # for https: the context trusting the panel's certificate
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
            with urllib.request.urlopen(request, timeout=30, context=self.tls) as reply:
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


def logged_in(url: str, users: UnixUsers, role: str) -> PanelClient:
    """A panel client logged in as the users' `role`."""
    client = PanelClient(url)
    name = users.names[role]
    answer = client.login(name, users.passwords[name])
    assert answer.status == 200, answer.body
    return client
