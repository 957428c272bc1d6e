"""The site's side of the centre's group lockdown: refused ones recorded and never acted on, an accepted one
handed to the registry as the local lockdown, seen ids kept across a restart, the reply at a deadline."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre import protocol
from config import ConfigError
from config.loader import load_site
from config.schema import CentreSection, MqttSection
from controller.auth import Role
from controller.centre_lockdown import CentreLockdown
from controller.commands import Reply
from controller.event_store import EventStore
from controller.exit_codes import ExitCode
from controller.site import Site
from tests.support import DEMO_SITE

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()
CFG = load_site(DEMO_SITE)
SITE = CFG.site.name
OPTED_IN = CentreSection(lockdown=True, keys={"hq-1": protocol.public_key_text(KEY)})
MQTT = MqttSection(host="broker")


class FakeRegistry:
    """Records what would be dispatched; answers like the lockdown command (secured after 1.5 s each)."""

    def __init__(self, hang: bool = False) -> None:
        self.calls: list[tuple[dict, object]] = []
        self.hang = hang

    async def dispatch(self, site, request, caller) -> Reply:
        self.calls.append((request, caller))
        if self.hang:
            await asyncio.Event().wait()
        secured = {name: 1.5 for name in site.devices}
        return Reply(ExitCode.DONE, "lockdown of the site: all secured", {"secured_at": secured, "failed": {}})


def command(sites=(SITE,), key=KEY, key_id="hq-1", issued_at=NOW, **changes) -> tuple[bytes, str]:
    payload = {**protocol.new_payload(list(sites), "armed vehicle", "duty-1", issued_at), **changes}
    return protocol.sign(key, key_id, payload), payload["id"]


@pytest.fixture
def store(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    yield store
    store.close()


def centre(store, cfg=OPTED_IN, registry=None, now=NOW) -> CentreLockdown:
    return CentreLockdown(cfg, MQTT, Site(CFG, store), registry or FakeRegistry(), clock=lambda: now)


def centre_events(store) -> list[dict]:
    return [e for e in store.recent_events(100) if e["kind"] == "centre"]


async def test_an_accepted_command_runs_the_local_lockdown_as_the_centre_and_answers_per_device(store):
    registry = FakeRegistry()
    listener = centre(store, registry=registry)
    body, command_id = command()
    answer = await listener.handle(body)
    [(request, caller)] = registry.calls
    assert request == {"command": "lockdown", "args": {"reason": "armed vehicle", "centre_id": command_id}}
    assert (caller.user, caller.role) == ("centre:duty-1 (key hq-1)", Role.TECHNICIAN)
    assert (answer["id"], answer["site"], answer["accepted"], answer["all_secured"]) == (command_id, SITE, True, True)
    assert set(answer["devices"]) == {d.name for d in CFG.device}
    assert answer["devices"]["blocker-1"]["secured_at"] == pytest.approx(NOW + 1.5)
    assert answer["secured_s"] == pytest.approx(1.5)
    assert [e["data"]["id"] for e in centre_events(store)] == [command_id]


@pytest.mark.parametrize(("make", "words"), [
    (lambda: json.dumps({"payload": base64.b64encode(b"{}").decode(), "key": "hq-1"}).encode(), "unsigned"),
    (lambda: command(key=STRANGER)[0], "bad signature"),
    (lambda: command(key=STRANGER, key_id="hq-9")[0], "unknown key hq-9"),
    (lambda: command(issued_at=NOW - 60)[0], "expired"),
    (lambda: command(issued_at=NOW + 30)[0], "not yet valid"),
    (lambda: command(sites=("elsewhere",))[0], "site not named"),
    (lambda: b"\xff" * 10, "malformed"),
])
async def test_refused_commands_are_recorded_with_reason_key_and_id_and_never_dispatched(store, make, words):
    registry = FakeRegistry()
    answer = await centre(store, registry=registry).handle(make())
    assert registry.calls == []
    assert answer["accepted"] is False and answer["reason"].startswith(words) and answer["devices"] == {}
    [event] = centre_events(store)
    assert event["data"]["reason"] == answer["reason"] and "refused" in event["summary"]
    if words in ("bad signature", "expired"):  # the claimed key and id are named
        assert event["data"]["key"] == "hq-1" and event["data"]["id"] == answer["id"] is not None


async def test_without_the_opt_in_every_command_is_refused(store):
    registry = FakeRegistry()
    listener = centre(store, cfg=CentreSection(lockdown=False), registry=registry)
    body, command_id = command()
    answer = await listener.handle(body)
    assert registry.calls == [] and answer["reason"].startswith("opt-in off") and answer["id"] == command_id


async def test_a_replay_is_refused_even_after_a_restart_and_ids_are_pruned_once_expired(tmp_path):
    path = tmp_path / "events.sqlite"
    body, command_id = command()
    first = EventStore(path)
    await centre(first).handle(body)
    again = await centre(first).handle(body)  # the same process
    assert again["reason"].startswith("replayed")
    first.close()
    restarted = EventStore(path)
    registry = FakeRegistry()
    answer = await centre(restarted, registry=registry, now=NOW + 10).handle(body)
    assert answer["reason"].startswith("replayed") and registry.calls == []
    assert restarted.load_centre_ids(NOW + 10) == {command_id}
    assert restarted.load_centre_ids(NOW + 30 + protocol.CLOCK_SKEW_S + 1) == set()
    restarted.close()


async def test_the_reply_comes_at_the_deadline_when_the_devices_are_not_confirmed(store):
    listener = centre(store, registry=FakeRegistry(hang=True))
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await listener.handle(command()[0])
    waited = loop.time() - started
    slowest = max(d.travel_limit_s for d in listener.site.devices.values())
    assert slowest < waited <= slowest + 5
    assert answer["accepted"] is True and answer["all_secured"] is False and answer["secured_s"] is None
    assert all(d["why"] == "not confirmed secured by the deadline" for d in answer["devices"].values())


async def test_a_refusal_flood_is_counted_not_recorded_one_by_one(store):
    listener = centre(store)
    for _ in range(100):
        await listener.handle(b"junk")
    assert len(centre_events(store)) == 30


def site_file(tmp_path: Path, extra: str, mqtt: bool = True) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(DEMO_SITE.read_text() + ('\n[mqtt]\nhost = "127.0.0.1"\n' if mqtt else "") + extra)
    return path


async def test_the_site_file_opts_in_with_its_keys_and_bad_keys_are_refused_at_load(tmp_path):
    good = protocol.public_key_text(KEY)
    cfg = load_site(site_file(tmp_path, f'[centre]\nlockdown = true\n[centre.keys]\nhq-1 = "{good}"\n'))
    assert cfg.centre is not None and cfg.centre.lockdown and list(cfg.centre.keys) == ["hq-1"]
    assert load_site(DEMO_SITE).centre is None  # off unless the site file has the section
    for extra, words in (
        ('[centre]\nlockdown = true\n[centre.keys]\nhq-1 = "not base64!"\n', "hq-1: not base64"),
        (f'[centre]\nlockdown = true\n[centre.keys]\nhq-1 = "{good[:20]}"\n', "hq-1"),
        ('[centre]\nlockdown = true\n[centre.keys]\nhq-1 = "' + base64.b64encode(b"k" * 16).decode() + '"\n',
         "16 bytes"),
        ("[centre]\nlockdown = true\n", "at least one key"),
    ):
        with pytest.raises(ConfigError, match="centre") as refused:
            load_site(site_file(tmp_path, extra))
        assert words in str(refused.value)
    with pytest.raises(ConfigError, match=r"needs an \[mqtt\] section"):
        load_site(site_file(tmp_path, "[centre]\nlockdown = false\n", mqtt=False))


class FakeClient:
    """Stands in for the aiomqtt client: records what is published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict]] = []

    async def publish(self, topic, payload, qos, retain) -> None:
        self.published.append((topic, json.loads(payload)))


async def test_a_flood_of_bad_envelopes_holds_no_task_beyond_the_answered_rate_and_a_genuine_command_goes_through(
        store):
    registry = FakeRegistry()
    listener, client = centre(store, registry=registry), FakeClient()
    for i in range(1000):
        listener.received(client, b"junk %d" % i)
    assert len(listener._answers) <= 30, "a task per refused envelope would let a flood grow without bound"
    body, command_id = command()
    listener.received(client, body)
    while listener._answers:
        await asyncio.sleep(0.1)
    assert len(registry.calls) == 1
    answers = [reply for _, reply in client.published]
    assert sum(1 for reply in answers if not reply["accepted"]) == 30
    assert any(reply["id"] == command_id and reply["all_secured"] for reply in answers)
