"""The panel's login on a fake PAM: a PC unable to check passwords (503, not counted) apart from a wrong one (401)."""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request

import controller.panel_auth as panel_auth
from config.loader import load_site
from config.schema import PanelSection
from controller.commands import build_registry
from controller.event_store import EventStore
from controller.panel_api import PanelApi
from controller.panel_auth import FAILURES_PER_USER, PasswordsUncheckable, pam_password_ok, pam_service_missing
from controller.site import Site
from tests.support import DEMO_SITE, REPO

SHADOW_UNREADABLE = "PAM service barrier-panel: Authentication service cannot retrieve authentication info"


class FakePam:
    """Answers like pam_password_ok: None, a wrong password's reason, or PasswordsUncheckable; counts its calls."""

    def __init__(self) -> None:
        self.answer: str | None | PasswordsUncheckable = PasswordsUncheckable(SHADOW_UNREADABLE)
        self.calls = 0

    def __call__(self, service: str, user: str, password: str) -> str | None:
        self.calls += 1
        if isinstance(self.answer, PasswordsUncheckable):
            raise self.answer
        return self.answer


@pytest.fixture
def api():
    pam = FakePam()
    site = Site(load_site(DEMO_SITE), EventStore(Path(":memory:")))
    return PanelApi(PanelSection(), site, build_registry(), password_ok=pam, clock=lambda: 1000.0), pam


async def log_in(api: PanelApi, user: str = "guard", password: str = "correct horse"):
    payload = streams.StreamReader(mock.Mock(), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(json.dumps({"user": user, "password": password}).encode())
    payload.feed_eof()
    reply = await api.login(make_mocked_request("POST", "/api/login", payload=payload,
                                                headers={"Content-Type": "application/json"}))
    return reply.status, json.loads(reply.body)


def panel_events(api: PanelApi) -> list[tuple[str, str]]:
    return [(e["subject"], e["summary"]) for e in api.site.store.recent_events(200) if e["kind"] == "panel"]


@pytest.mark.asyncio
async def test_a_pc_that_cannot_check_passwords_answers_503_records_the_cause_once_and_counts_no_failure(api):
    api, pam = api
    for _ in range(FAILURES_PER_USER + 2):  # more than the limit allows wrong passwords
        status, body = await log_in(api)
        assert status == 503, body
        assert body["error"].startswith("the site PC could not check passwords") and "technician" in body["error"]
    assert pam.calls == FAILURES_PER_USER + 2, "every attempt asked PAM: none was refused by the failed-login limit"
    assert api.limiter.refusal("guard") is None
    assert panel_events(api) == [("barrier-panel", f"the site PC could not check passwords: {SHADOW_UNREADABLE}")]

    pam.answer = PasswordsUncheckable("PAM has no service barrier-panel")  # another cause is recorded again
    assert (await log_in(api))[0] == 503
    assert panel_events(api)[-1] == ("barrier-panel", "the site PC could not check passwords: PAM has no service "
                                                      "barrier-panel")


@pytest.mark.asyncio
async def test_a_wrong_password_answers_401_and_counts_and_ends_a_recorded_outage(api):
    api, pam = api
    assert (await log_in(api))[0] == 503
    pam.answer = "[PAM Error 7] Authentication failure"
    for _ in range(FAILURES_PER_USER):
        assert await log_in(api) == (401, {"error": "wrong user or password"})
    assert (await log_in(api))[0] == 429 and pam.calls == 1 + FAILURES_PER_USER
    events = panel_events(api)
    assert events[1] == ("barrier-panel", "the site PC checks passwords again")
    assert events[2:] == [("guard", "login refused: wrong user or password")] * FAILURES_PER_USER + [
        ("guard", "login refused: too many failed logins")]


def fake_pamela(errno: int | None, *, accepts: bool = False) -> types.ModuleType:
    """A pamela whose authenticate raises PAMError with `errno` (None: pamela's error without a code), or accepts."""
    module = types.ModuleType("pamela")

    class PAMError(Exception):
        def __init__(self, message: str = "", errno: int | None = None) -> None:
            self.errno, self.message = errno, message or f"PAM says {errno}"

        def __str__(self) -> str:
            return f"[PAM Error {self.errno}] {self.message}"

    def authenticate(user, password, service, resetcred):
        assert resetcred == 0, "barrierd's own credentials must never be changed"
        if not accepts:
            raise PAMError(errno=errno)

    module.PAMError, module.authenticate = PAMError, authenticate
    return module


@pytest.fixture
def pam_dir(tmp_path, monkeypatch):
    (tmp_path / "barrier-panel").write_text("auth required pam_unix.so\n")
    monkeypatch.setattr(panel_auth, "PAM_DIRS", (tmp_path,))
    return tmp_path


@pytest.mark.parametrize("errno, name", [(4, "PAM_SYSTEM_ERR"), (9, "PAM_AUTHINFO_UNAVAIL"), (1, "PAM_OPEN_ERR"),
                                         (19, "PAM_CONV_ERR"), (None, "no PAM code")])
def test_pam_system_errors_mean_the_password_was_not_checked(pam_dir, monkeypatch, errno, name):
    monkeypatch.setitem(sys.modules, "pamela", fake_pamela(errno))
    with pytest.raises(PasswordsUncheckable) as uncheckable:
        pam_password_ok("barrier-panel", "guard", "pw")
    assert str(uncheckable.value).startswith("PAM service barrier-panel: ") and f"({name})" in str(uncheckable.value)


@pytest.mark.parametrize("errno", [7, 10, 6, 13, 11])  # auth error, unknown user, denied, expired, max tries
def test_pam_refusals_of_the_user_are_a_wrong_user_or_password(pam_dir, monkeypatch, errno):
    monkeypatch.setitem(sys.modules, "pamela", fake_pamela(errno))
    assert pam_password_ok("barrier-panel", "guard", "pw") == f"[PAM Error {errno}] PAM says {errno}"


def test_pam_accepting_is_none(pam_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pamela", fake_pamela(None, accepts=True))
    assert pam_password_ok("barrier-panel", "guard", "pw") is None


def test_an_unreadable_shadow_file_is_named_as_the_cause(pam_dir, monkeypatch, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text("")
    monkeypatch.setattr(panel_auth, "SHADOW", shadow)
    monkeypatch.setattr(panel_auth.os, "access", lambda path, mode: path != shadow)
    monkeypatch.setitem(sys.modules, "pamela", fake_pamela(9))
    with pytest.raises(PasswordsUncheckable) as uncheckable:
        pam_password_ok("barrier-panel", "guard", "pw")
    assert f"cannot read {shadow}" in str(uncheckable.value) and "SupplementaryGroups=shadow" in str(uncheckable.value)


def test_a_service_without_its_file_is_named_before_pam_falls_back_to_other(tmp_path):
    etc, vendor = tmp_path / "etc", tmp_path / "usr"
    etc.mkdir()
    vendor.mkdir()
    missing = pam_service_missing("barrier-panel", (etc, vendor))
    assert missing == (f"PAM has no service barrier-panel: no {etc / 'barrier-panel'} "
                       "(the shipped one is deploy/pam.d/barrier-panel)")
    (vendor / "barrier-panel").write_text("")
    assert pam_service_missing("barrier-panel", (etc, vendor)) is None
    assert pam_service_missing("barrier-panel", (tmp_path / "no-pam.d", vendor)) is None  # /etc/pam.conf: not ours


def test_the_default_pam_service_is_the_shipped_file_with_pam_unix_and_no_session():
    shipped = REPO / "deploy" / "pam.d" / PanelSection().pam_service
    rules = [line.split() for line in shipped.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert rules == [["auth", "required", "pam_unix.so"], ["account", "required", "pam_unix.so"]]
