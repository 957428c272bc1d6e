"""The panel benchmarks' rig: a real Unix user for the run, a lanes site with [panel] and [access], headless Chromium.

The user is made with useradd + chpasswd (so the panel's PAM login checks a real password), and the shipped
PAM service file (deploy/pam.d/barrier-panel) installed under a name of the run's own; both removed when the
with-block ends, as tests/e2e/panel_rig.py does for the panel's tests.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from bench.sites import free_ports, lanes_site, write_site

PAM_FILE = Path(__file__).resolve().parent.parent / "deploy" / "pam.d" / "barrier-panel"
PAM_DIR = Path("/etc/pam.d")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,800")


class UnixUser:
    """One operator made for the run, with a random password, and the PAM service the run's panel checks it
    with; both removed when the with-block ends."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"pnlbench{tag}"
        self.password = secrets.token_urlsafe(12)
        self.pam_service = f"barrier-panel-bench{tag}"

    def __enter__(self) -> UnixUser:
        (PAM_DIR / self.pam_service).write_text(PAM_FILE.read_text())
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", self.name], check=True)
        try:
            subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n", text=True, check=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["userdel", self.name], check=False, capture_output=True)
        (PAM_DIR / self.pam_service).unlink(missing_ok=True)


def panel_site(path: Path, lanes: int, user: UnixUser, *, poll_ms: int = 100) -> tuple[Path, str]:
    """A site of `lanes` lanes (bench.sites.lanes_site) with `user` an operator in [access] and the panel on a
    free loopback port checking passwords with the user's PAM service; the file and the panel's URL."""
    (port,) = free_ports(1)
    text = lanes_site(lanes, poll_ms=poll_ms, name="bench-panel")
    text += (f'\n[access]\noperator = ["{user.name}"]\n\n[panel]\nhost = "127.0.0.1"\nport = {port}\n'
             f'pam_service = "{user.pam_service}"\n')
    return write_site(path, text), f"http://127.0.0.1:{port}/"


def chromium(profile: Path):
    """Debian's Chromium through its ChromeDriver, headless at the booth's 1280x800 (as tests/e2e/test_panel.py)."""
    from selenium import webdriver  # imported here: only the panel_push benchmark needs it
    from selenium.webdriver.chrome.service import Service

    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        raise RuntimeError("chromium and chromium-driver are not installed (Debian packages; `make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
