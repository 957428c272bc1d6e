"""The centre's web page over a real socket: the picture, its live push, read only, and only on its own address."""

from __future__ import annotations

import json
import re

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from centre.fleet import Fleet
from centre.broker import BrokerAddress
from centre.listen import Listener
from centre.web import CentrePage
from tests.support import free_port

pytestmark = pytest.mark.asyncio


def own_host(client: TestClient) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{client.port}"}


@pytest_asyncio.fixture
async def served():
    fleet = Fleet()
    fleet.receive("b/north/status", b'{"online": true, "site": "north", "refresh_s": 2}')
    fleet.receive("b/north/device/gate-1", b'{"name": "gate-1", "kind": "folding_gate", "state": "open"}', 6)
    listener = Listener(fleet, BrokerAddress("127.0.0.1", 1), "b/#")
    port = free_port()
    centre_page = CentrePage(fleet, listener, "127.0.0.1", port, tls=False)
    client = TestClient(TestServer(centre_page.app(), host="127.0.0.1", port=port))
    await client.start_server()
    yield client, fleet, centre_page
    await client.close()


async def test_the_page_reads_only_and_answers_only_its_own_address(served):
    client, _, _ = served
    host = own_host(client)
    picture = await (await client.get("/api/picture", headers=host)).json()
    assert picture["sites"][0]["prefix"] == "b/north" and picture["link"]["connected"] is False
    page = await client.get("/", headers=host)
    assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    links = re.findall(r'(?:src|href)="([^"]*)"', await page.text())
    assert links == ["/centre.css", "/centre.js"], "nothing from elsewhere (no CDN)"
    for path in links:
        assert (await client.get(path, headers=host)).status == 200
    for method in ("POST", "PUT", "DELETE"):
        assert (await client.request(method, "/api/picture", headers=host)).status == 405
    assert (await client.get("/api/picture", headers={"Host": "rebound.example:80"})).status == 421
    assert (await client.get("/api/command", headers=host)).status == 404


async def test_the_live_push_sends_the_picture_and_again_on_each_message(served):
    client, fleet, centre_page = served
    response = await client.get("/api/live", headers=own_host(client))
    assert response.headers["Content-Type"] == "text/event-stream"
    first = json.loads((await response.content.readuntil(b"\n\n")).decode().removeprefix("data: "))
    assert first["sites"][0]["others"][0]["state"] == "open"
    fleet.receive("b/north/status", b'{"online": false, "reason": "connection lost"}')
    centre_page._on_message()
    second = json.loads((await response.content.readuntil(b"\n\n")).decode().removeprefix("data: "))
    assert second["sites"][0]["state"] == "offline" and second["sites"][0]["others"][0]["state"] == "offline"
    response.close()
