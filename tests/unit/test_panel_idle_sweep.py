"""The panel's idle sweep on looptime's virtual loop time: an idle session's end is recorded when it happens."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request

import controller.panel_api as panel_api
from config.loader import load_site
from config.schema import PanelSection
from controller.commands import build_registry
from controller.event_store import EventStore
from controller.panel_api import COOKIE, PanelApi
from controller.site import Site
from tests.support import DEMO_SITE

IDLE_S = 60


@pytest.fixture
def api(monkeypatch):
    """A panel API whose PAM accepts every password and whose users are barrierd's own (technicians)."""
    me = pwd.struct_passwd(("guard", "x", os.geteuid(), os.getegid(), "", "/", "/bin/sh"))
    monkeypatch.setattr(panel_api.pwd, "getpwnam", lambda name: me)
    site = Site(load_site(DEMO_SITE), EventStore(Path(":memory:")))
    api = PanelApi(PanelSection(idle_timeout_s=IDLE_S), site, build_registry(), password_ok=lambda *_: None)
    yield api
    api.stop()


async def log_in(api: PanelApi, user: str) -> str:
    """The session cookie of a login of `user`."""
    payload = streams.StreamReader(mock.Mock(), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(json.dumps({"user": user, "password": "correct horse"}).encode())
    payload.feed_eof()
    reply = await api.login(make_mocked_request("POST", "/api/login", payload=payload,
                                                headers={"Content-Type": "application/json"}))
    assert reply.status == 200, reply.body
    return reply.cookies[COOKIE].value


def idle_ends(recorded: list[tuple[float, dict]]) -> list[tuple[float, str, str]]:
    return [(round(at, 3), e["subject"], e["summary"]) for at, e in recorded
            if e["kind"] == "panel" and e["summary"].startswith("session ended")]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_idle_session_is_recorded_ended_at_its_idle_time_once_with_no_request(api):
    loop = asyncio.get_running_loop()
    recorded: list[tuple[float, dict]] = []
    api.site.store.listeners.append(lambda event: recorded.append((loop.time(), event)))
    start = loop.time()
    guard = await log_in(api, "guard")
    await asyncio.sleep(10)
    tech = await log_in(api, "tech")
    await asyncio.sleep(IDLE_S - 20)
    api.sessions.touch(api.sessions.get(tech))  # tech sends a command at start + 50 s
    await asyncio.sleep(IDLE_S * 3)

    assert idle_ends(recorded) == [(round(start + IDLE_S, 3), "guard", f"session ended: idle for {IDLE_S} s"),
                                   (round(start + 50 + IDLE_S, 3), "tech", f"session ended: idle for {IDLE_S} s")]
    cookie = {"Cookie": f"{COOKIE}={guard}"}
    assert api.session_of(make_mocked_request("GET", "/api/session", headers=cookie)) is None
    assert len(idle_ends(recorded)) == 2, "an ended session's cookie coming back records nothing more"
    assert api._sweep_timer is None, "no session left: no timer"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_session_in_use_is_never_ended_and_a_logout_is_no_idle_end(api):
    loop = asyncio.get_running_loop()
    recorded: list[tuple[float, dict]] = []
    api.site.store.listeners.append(lambda event: recorded.append((loop.time(), event)))
    busy, gone = await log_in(api, "guard"), await log_in(api, "tech")
    api.sessions.close(gone)
    for _ in range(10):
        await asyncio.sleep(IDLE_S - 1)
        api.sessions.touch(api.sessions.get(busy))
    assert idle_ends(recorded) == [] and api.sessions.get(busy) is not None
