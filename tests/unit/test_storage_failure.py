"""A disk that refuses writes: records kept in order and written later, commands that open refused, securing
commands carried out, latches shown only as persisted as they are, supervision never stopped."""

from __future__ import annotations

import json
import sqlite3

import pytest
import pytest_asyncio

from controller.commands import ExitCode, build_registry
from controller.event_store import EventStore
from controller.site import STORAGE
from controller.storage import RETRY_S, Storage, StorageFailed
from hal.profile import Command, SignalCommand, Status
from tests.unit.test_lane_properties import CFG, GUARD, TECH, plant_site


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refuse_writes(store: EventStore) -> None:
    """The file turns read-only under barrierd, as a remounted or failing disk does."""
    store.storage.db.execute("PRAGMA query_only = ON")


def allow_writes(store: EventStore) -> None:
    store.storage.db.execute("PRAGMA query_only = OFF")


def rows(path, sql: str) -> list[tuple]:
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest_asyncio.fixture
async def plant(tmp_path):
    clock = FakeClock()
    fake = await plant_site(EventStore(tmp_path / "events.sqlite", clock=clock))
    fake.clock = clock
    yield fake
    fake.site.store.close()


async def run(site, command, caller=GUARD, **args):
    return await build_registry().dispatch(site, {"command": command, "args": args}, caller)


def test_a_full_disk_keeps_writes_in_order_and_writes_them_once_it_has_room(tmp_path):
    clock = FakeClock()
    storage = Storage(tmp_path / "s.sqlite", "CREATE TABLE IF NOT EXISTS t (n INTEGER, pad TEXT);", clock=clock)
    told = []
    storage.listeners.append(told.append)
    pages = storage.db.execute("PRAGMA page_count").fetchone()[0]
    storage.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full: SQLite says SQLITE_FULL
    for n in range(5):
        storage.write(lambda db, n=n: db.execute("INSERT INTO t VALUES (?, ?)", (n, "x" * 2000)), {"n": n})
    assert storage.problem is not None and "full" in storage.problem
    assert told == [storage.problem], "listeners told once when the problem starts"
    assert storage.pending >= 1 and storage.health()["ok"] is False
    with pytest.raises(StorageFailed):
        storage.write(lambda db: db.execute("INSERT INTO t VALUES (99, '')"), {"n": 99}, required=True)
    storage.db.execute("PRAGMA max_page_count = 100000")  # space comes back
    assert storage.retry() is False, "not retried before RETRY_S"
    clock.now += RETRY_S
    assert storage.retry() is True
    assert [r[0] for r in storage.read("SELECT n FROM t ORDER BY rowid")] == [0, 1, 2, 3, 4], \
        "every kept write, in order; the refused required write not at all"
    assert storage.problem is None and told[-1] is None and storage.health()["pending"] == 0


def test_an_unopenable_store_supervises_from_memory_and_opens_when_it_can(tmp_path, monkeypatch):
    path = tmp_path / "events.sqlite"
    first = EventStore(path)
    first.save_mode("site", "lockdown", "guard", "drill")
    first.close()
    clock = FakeClock()
    real_open = Storage._open
    monkeypatch.setattr(Storage, "_open", lambda self: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    store = EventStore(path, clock=clock)
    assert store.storage.db is None and "disk I/O error" in store.storage.problem
    assert store.load_modes()["site"][:3] == ("lockdown", "guard", "drill"), "latches read from the file read-only"
    assert store.record_event("daemon", "site", "barrierd started") is None
    monkeypatch.setattr(Storage, "_open", real_open)
    clock.now += RETRY_S
    assert store.storage.retry() is True
    assert rows(path, "SELECT summary FROM events")[-1] == ("barrierd started",)
    assert all(r.intact for r in store.verify_audit())
    store.close()


@pytest.mark.asyncio
async def test_opening_commands_are_refused_and_securing_ones_go_through_while_the_disk_refuses(plant):
    site = plant.site
    refuse_writes(site.store)
    refused = await run(site, "open", device="gate-1")
    assert refused.code is ExitCode.REFUSED and "storage_unavailable" in refused.message
    assert plant.writes == [], "nothing written to the PLC for a command that could not be recorded"
    assert [a["code"] for a in site.status()["alarms"]] == ["STORAGE_FAILED"]
    for command, args in (("maintenance_enter", {"lane": "lane-1", "reason": "x"}), ("lane_open", {"lane": "lane-1"}),
                          ("green", {"device": "signal-1"}), ("lower", {"device": "blocker-1"})):
        reply = await run(site, command, TECH, **args)
        assert reply.code is ExitCode.REFUSED, (command, reply.message)
    assert site.lanes["lane-1"].mode == "secured", "no maintenance latch that is not on disk"
    assert plant.writes == []
    closed = await run(site, "red", device="signal-2")
    assert closed.code is ExitCode.DONE and "not recorded yet" in closed.message
    assert plant.writes == [("signal-2", SignalCommand.RED)]

    allow_writes(site.store)
    plant.clock.now += RETRY_S
    assert site.store.storage.retry() is True
    assert site.status()["storage"]["ok"] and not [a for a in site.status()["alarms"] if a["code"] == "STORAGE_FAILED"]
    commands = [(c["command"], c["outcome"]) for c in site.store.recent_commands()]
    assert commands[0] == ("open", "refused") and commands[-1] == ("red", "done")
    requested = [e for e in site.store.recent_events(200) if e["kind"] == "command_requested"]
    assert [e["data"]["command"] for e in requested] == ["red"], "only the securing command was requested and acted"
    assert all(r.intact for r in site.store.verify_audit())


@pytest.mark.asyncio
async def test_a_lockdown_on_a_refusing_disk_holds_is_carried_out_and_says_it_is_not_persisted(plant):
    site = plant.site
    await run(site, "lane_open", lane="lane-1")
    plant.writes.clear()
    refuse_writes(site.store)
    reply = await run(site, "lockdown", reason="intruder")
    assert reply.code is ExitCode.DONE
    assert ("blocker-1", Command.EFO) in plant.writes and ("gate-1", Command.CLOSE) in plant.writes
    status = site.status()
    assert status["lockdown"]["persisted"] is False
    assert all(lane["mode"] == "lockdown" and lane["persisted"] is False for lane in status["lanes"])
    allow_writes(site.store)
    plant.clock.now += RETRY_S
    site.store.storage.retry()
    status = site.status()
    assert status["lockdown"]["persisted"] is True and all(lane["persisted"] for lane in status["lanes"])
    assert site.store.load_modes()["site"][:3] == ("lockdown", "guard", "intruder")


@pytest.mark.asyncio
async def test_supervision_goes_on_while_the_disk_refuses(plant):
    site = plant.site
    refuse_writes(site.store)
    plant.status["gate-1"] = int(Status.AT_OPEN)  # pushed open by hand
    await plant.feed(site.devices["gate-1"])
    assert site.devices["gate-1"].state == "open"
    plant.offline.add("plc-lane-1")
    await plant.feed(site.devices["gate-1"])
    await site.lanes["lane-1"].on_devices_read()
    assert site.devices["gate-1"].state == "unknown"
    allow_writes(site.store)
    plant.clock.now += RETRY_S
    site.store.storage.retry()
    changes = [e["summary"] for e in site.store.recent_events(200) if e["subject"] == "gate-1"]
    assert "gate-1: closed → open" in changes and "gate-1: open → unknown" in changes


@pytest.mark.asyncio
async def test_a_lane_is_unknown_not_secured_while_its_data_are_not_valid(plant):
    site = plant.site
    lane = site.lanes["lane-1"]
    assert lane.mode == "secured"
    plant.offline.add("plc-lane-1")
    for device in lane.devices:
        await plant.feed(device)
    await lane.on_devices_read()
    assert lane.mode == "unknown" and "no valid data" in lane.reason
    plant.offline.clear()
    for device in lane.devices:
        await plant.feed(device)
    await lane.on_devices_read()
    assert lane.mode == "secured" and lane.reason == "every device secured"


@pytest.mark.asyncio
async def test_text_that_is_not_unicode_is_refused_and_nothing_latched(plant):
    site = plant.site
    reply = await run(site, "lockdown", reason="intruder\udcff")
    assert reply.code is ExitCode.USAGE and "not valid Unicode" in reply.message
    assert site.lockdown.latch is None and all(lane.mode != "lockdown" for lane in site.lanes.values())
    reply = await run(site, "maintenance_enter", TECH, lane="lane-1", reason="\udcffoil")
    assert reply.code is ExitCode.USAGE and site.lanes["lane-1"].mode == "secured"
    assert site.store.recent_commands()[-1]["args"] == {"not_stored": "arguments that are not valid Unicode"}
    assert all(r.intact for r in site.store.verify_audit())


@pytest.mark.asyncio
async def test_an_unknown_command_stores_its_name_and_size_not_its_payload(plant):
    site = plant.site
    payload = {"blob": "A" * 60_000}
    reply = await build_registry().dispatch(site, {"command": "x" * 500, "args": payload}, GUARD)
    assert reply.code is ExitCode.USAGE
    row = site.store.recent_commands()[-1]
    assert len(row["command"]) <= 70 and "A" * 100 not in json.dumps(row)
    assert row["args"] == {"not_stored": f"{len(json.dumps(payload))} bytes of arguments"}


@pytest.mark.asyncio
async def test_event_bounds_are_usage_errors_not_crashes(plant):
    site = plant.site
    for args in ({"after": 10**30}, {"after": -1}, {"limit": True}, {"after": 1.5}):
        assert (await run(site, "events", **args)).code is ExitCode.USAGE, args
    assert (await run(site, "ack", alarm=10**30)).code is ExitCode.USAGE


def test_the_storage_alarm_subject_is_not_a_device():
    assert STORAGE not in {d.name for d in CFG.device} | {p.name for p in CFG.plc}
