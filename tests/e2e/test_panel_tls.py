"""End to end: the panel on an address other than loopback, served over HTTPS only, with a certificate made here."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
import urllib.error
import urllib.request

import aiohttp
import pytest

from tests.e2e.panel_rig import PanelClient, start_tls_panel_site

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_panel(tmp_path_factory, users, non_loopback_address):
    """One site for the module: each test uses its own sessions and leaves nothing the next one reads."""
    procs, url, tls = start_tls_panel_site(tmp_path_factory.mktemp("tls"), users, non_loopback_address)
    yield procs, url, tls
    procs.close()


def test_over_https_a_guard_logs_in_with_a_secure_cookie_and_commands(tls_panel, users):
    procs, url, tls = tls_panel
    assert url.startswith("https://") and not url.startswith("https://127.")
    client = PanelClient(url, tls)
    guard = users.names["operator"]
    answer = client.login(guard, users.passwords[guard])
    assert answer.status == 200, answer.body
    cookie = [part.strip() for part in answer.headers["Set-Cookie"].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Strict"} <= set(cookie), cookie

    reply = client.command("open", device="gate-1")
    assert reply.status == 200 and reply.body["exit"] == 0, reply.body
    with sqlite3.connect(procs.event_db) as db:
        rows = db.execute("SELECT user, command, outcome FROM commands").fetchall()
    assert (guard, "open", "done") in rows
    assert [w for w in procs.writes() if w["plc"] == "plc-lane-1" and w["fc"] == 16]  # it reached the PLC


def test_plain_http_and_an_untrusted_client_get_no_answer(tls_panel):
    _procs, url, _tls = tls_panel
    for plain in (url.replace("https://", "http://") + "api/status", url.replace("https://", "http://")):
        with pytest.raises(OSError) as failed:
            urllib.request.urlopen(plain, timeout=10)
        assert not isinstance(failed.value, urllib.error.HTTPError), "an HTTP answer came back over plain HTTP"
    with pytest.raises(urllib.error.URLError) as untrusted:  # the system's CAs do not vouch for it
        urllib.request.urlopen(url + "api/status", timeout=10, context=ssl.create_default_context())
    assert isinstance(untrusted.value.reason, ssl.SSLCertVerificationError), untrusted.value


def test_off_loopback_reading_needs_a_session(tls_panel, users):
    _procs, url, tls = tls_panel
    anonymous = PanelClient(url, tls)
    for path in ("/api/status", "/api/layout", "/api/events?after=0", "/api/health"):
        refused = anonymous.request("GET", path)
        assert refused.status == 401 and "log in" in refused.body["error"], (path, refused.body)
    viewer = PanelClient(url, tls)
    name = users.names["viewer"]
    login = viewer.login(name, users.passwords[name])
    assert login.status == 200 and login.body["reading_needs_login"] is True, login.body  # the page stops reading at logout
    assert viewer.request("GET", "/api/session").body["reading_needs_login"] is True
    status = viewer.request("GET", "/api/status")
    assert status.status == 200 and {d["name"] for d in status.body["devices"]} >= {"gate-1", "bay-exit"}
    health = viewer.request("GET", "/api/health?device=bay-exit")
    assert health.status == 200 and [d["name"] for d in health.body["data"]["devices"]] == ["bay-exit"]


async def closed_by_panel(ws: aiohttp.ClientWebSocketResponse, timeout_s: float) -> tuple[int, str]:
    """Read (answering pings) until the panel closes the socket; its close code and reason."""
    async with asyncio.timeout(timeout_s):
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.CLOSE:
                return message.data, message.extra
            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG), message


async def live_until_logout(url: str, tls: ssl.SSLContext, client: PanelClient | None) -> tuple[str, int, str]:
    """Open /api/live over wss with `client`'s cookie (none without a client), log it out once the first
    message came; the first message's type and the panel's close code and reason."""
    headers = {"Cookie": client.cookie} if client else {}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url.replace("https://", "wss://") + "api/live", ssl=tls, headers=headers) as ws:
            first = await asyncio.wait_for(ws.receive_json(), 5)
            assert (await asyncio.to_thread(client.request, "POST", "/api/logout", {})).status == 200
            return (first["type"], *await closed_by_panel(ws, 5))


def test_off_loopback_a_page_without_a_session_gets_no_live_status_and_a_page_is_closed_at_logout(tls_panel, users):
    _procs, url, tls = tls_panel
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(live_until_logout(url, tls, None))
    assert refused.value.status == 401
    guard = PanelClient(url, tls)
    name = users.names["operator"]
    assert guard.login(name, users.passwords[name]).status == 200
    first, code, reason = asyncio.run(live_until_logout(url, tls, guard))
    assert first == "status" and code == 1008 and "session ended" in reason, (code, reason)  # 1008: policy
