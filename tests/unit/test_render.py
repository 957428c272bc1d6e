"""Every view renders every state the code can produce, and text from people and PLCs verbatim, never as markup."""

from __future__ import annotations

import copy
import io
import itertools

import pytest
import pytest_asyncio
from rich.console import Console

from controller.alarm_codes import CODES
from controller.devices import DEVICE_CLASSES
from hal.kinds import KINDS
from controller.event_store import EventStore
from controller.lanes import MODES
from controller.render import alarms_table, event_lines, events_table, plain, status_tables
from hal.unit import Quality
from tests.unit.test_lane_properties import plant_site

HOSTILE = [
    "car AB-123 [/] fled", "[red]shown as typed[/red]", "[bold", "\x1b[31mred\x1b[0m", "nul\x00bell\x07tab\tnl\n",
    "A" * 10_000, "שלום عربى \u202eevil", "🚧🚗💥", "lone \udcff surrogate", "", "[link=file:///etc/passwd]x[/link]",
]
STATES = sorted({s for cls in DEVICE_CLASSES.values() for s in cls.STATES} | {w for spec in KINDS.values() for w in spec.state_words.values()} | {"bogus"})
COMMS = ["ok", "lost", "stale", "invalid", "bogus"]


@pytest_asyncio.fixture
async def real_status(tmp_path):
    site = (await plant_site(EventStore(tmp_path / "events.sqlite"))).site
    site.alarms.raise_alarm("COMMS_LOST", "plc-lane-1", "no reply")
    yield site.status()
    site.store.close()


def render(view, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for part in view if isinstance(view, list) else [view]:
        console.print(part)
    return console.file.getvalue()


def test_plain_shows_control_characters_as_escapes_and_keeps_everything_else():
    assert plain("car [/] fled") == "car [/] fled"
    assert plain("\x1b[31m") == "\\x1b[31m"
    assert plain("a\nb\tc\x00") == "a\\nb\\tc\\x00"
    assert plain("lone \udcff") == "lone \\udcff"
    assert plain("🚧 שלום") == "🚧 שלום"
    assert plain(None) == ""


@pytest.mark.asyncio
async def test_every_lane_mode_device_state_quality_and_plc_condition_renders(real_status):
    modes = list(MODES) + ["mixed", "bogus"]
    states = list(itertools.product(STATES, [q.value for q in Quality] + ["bogus"]))
    for n, (mode, comms) in enumerate(itertools.product(modes, COMMS)):  # every mode with every PLC condition,
        state, quality = states[n % len(states)]  # and every device state with every quality along the way
        status = copy.deepcopy(real_status)
        for lane in status["lanes"]:
            lane["mode"] = mode
        for device in status["devices"]:
            device["state"] = device["display"] = state
            device["quality"] = quality
        for plc in status["plcs"]:
            plc["comms"] = comms
        out = render(status_tables(status))
        assert state in out and mode in out and comms in out
    for state, quality in states[len(modes) * len(COMMS):]:
        status = copy.deepcopy(real_status)
        for device in status["devices"]:
            device["state"] = device["display"] = state
            device["quality"] = quality
        assert state in render(status_tables(status))


@pytest.mark.asyncio
async def test_every_alarm_code_and_severity_renders(real_status):
    alarms = [{"id": i, "code": code.code, "subject": "gate-1", "severity": code.severity.name.lower(),
               "message": code.text, "raised_at": 0, "cleared_at": None, "acked_by": None, "acked_at": None,
               "active": True} for i, code in enumerate(CODES.values())]
    out = render(alarms_table(alarms), width=400)
    for code in CODES:
        assert code in out


@pytest.mark.asyncio
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_text_is_shown_verbatim_everywhere(real_status, text):
    status = copy.deepcopy(real_status)
    status["lockdown"] = {"by": text, "reason": text, "since": 0, "persisted": False}
    status["storage"] = {"ok": False, "problem": text, "pending": 3}
    status["lanes"][0].update(mode="lockdown", reason=text, lockdown={"by": text, "reason": text, "since": 0})
    status["devices"][0].update(reason=text, intent="open", intent_by=text)
    status["plcs"][0].update(comms="lost", reason=text)
    status["alarms"] = [{"id": 1, "code": "X", "subject": text, "severity": "fault", "message": text,
                         "raised_at": 0, "cleared_at": None, "acked_by": text, "acked_at": 0, "active": True}]
    events = [{"id": 1, "ts": 0, "kind": text, "subject": text, "summary": text, "data": {}}]
    expected = plain(text)
    for view in (status_tables(status), events_table(events), event_lines(events)):
        out = render(view, width=100_000)
        assert "\x1b" not in out, "an escape sequence reached the terminal"
        if expected:
            assert expected in out, "text lost or interpreted"
        render(view, width=80)  # and narrow: folded, never an exception
