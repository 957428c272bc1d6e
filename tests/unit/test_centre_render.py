"""The centre's terminal views and web page rules: every state drawn, people's text verbatim, loopback unless TLS."""

from __future__ import annotations

import itertools
import json

import pytest
from rich.console import Console

from centre import topics
from centre.cli import parser
from centre.fleet import Fleet
from centre.broker import parse_host_port
from centre.render import MODE_STYLE, STATE_STYLE, live_view, status_table
from centre.web import check_listen
from config.schema import NAME, is_loopback
from hal.kinds import KINDS


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def drawn(renderable) -> str:
    console = Console(record=True, width=200, color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_text()


def fleet_in_every_state() -> tuple[Fleet, FakeClock]:
    """One site per (device state, lane mode) pair of words barrierd publishes, and the words the centre adds."""
    clock = FakeClock()
    fleet = Fleet(clock=clock)
    pairs = itertools.zip_longest(sorted(topics.DEVICE_STATES), sorted(topics.LANE_MODES), fillvalue="unknown")
    for i, (state, mode) in enumerate(pairs):
        prefix = f"all/s{i}"
        fleet.receive(f"{prefix}/status", json.dumps({"online": True, "site": f"s{i}", "refresh_s": 5}).encode())
        for kind in KINDS:
            name = kind.replace("_", "-")
            body = {"name": name, "kind": kind, "state": state}
            fleet.receive(f"{prefix}/device/{name}", json.dumps(body).encode(), 15)
        fleet.receive(f"{prefix}/lane/lane-1", json.dumps({"name": "lane-1", "mode": mode, "devices": [
            k.replace("_", "-") for k in KINDS]}).encode(), 15)
        fleet.receive(f"{prefix}/lockdown", json.dumps({"by": "guard", "reason": "x", "since": 1.0}).encode(), 15)
        fleet.receive(f"{prefix}/alarms", json.dumps([{"code": "LAMP_FAULT", "subject": "s", "message": "m"}]).encode(),
                      15)
    fleet.receive("all/offline/status", b'{"online": false, "reason": "connection lost"}')
    fleet.receive("all/offline/device/gate-1", b'{"name": "gate-1", "state": "open"}', 15)
    fleet.receive("all/garbled/status", b"\x00\xff")
    fleet.receive("all/garbled/device/gate-1", b'{"name": "gate-1", "state": "very open"}', 15)
    fleet.receive("all/quiet/device/gate-1", b'{"name": "gate-1", "state": "open"}', 15)  # no status ever
    return fleet, clock


@pytest.mark.parametrize("later_s", [0.0, 20.0], ids=["current", "stale"])
def test_every_state_is_drawn_in_the_table_and_the_live_view(later_s):
    fleet, clock = fleet_in_every_state()
    clock.now += later_s
    picture = fleet.picture()
    table, live = drawn(status_table(picture)), drawn(live_view(picture, "connected to b:1883"))
    for site in picture["sites"]:
        assert (site["site"] or site["prefix"]) in table
    if later_s:
        assert "stale" in table and "closed" not in table and "raised" not in live
        assert "░folding-gate stale░" in live and "░gate-1 stale░" in live  # stale: hatched, no last value
    else:
        for word in ("raised", "lowering", "closed", "green", "fault", "local", "lockdown", "LOCKDOWN", "LAMP_FAULT"):
            assert word in live, word
    assert "░gate-1 offline░" in live and "OFFLINE (connection lost)" in live
    assert "UNREADABLE" in live and "unreadable message" in live


def test_every_word_the_centre_shows_has_a_style():
    words = topics.DEVICE_STATES | {w for spec in KINDS.values() for w in spec.state_words.values()}
    assert words | {"stale", "offline", "unheard", "unreadable"} <= set(STATE_STYLE)
    assert topics.LANE_MODES | {"stale", "offline", "unheard", "unreadable"} <= set(MODE_STYLE)


def test_names_and_reasons_are_shown_verbatim_never_as_markup_or_escapes():
    fleet = Fleet(clock=FakeClock())
    fleet.receive("x/a/status", json.dumps({"online": False, "reason": "[bold]cut[/bold] \x1b[2J wire"}).encode())
    out = drawn(live_view(fleet.picture(), "NOT CONNECTED"))
    assert "[bold]cut[/bold] \\x1b[2J wire" in out and "\x1b[2J" not in out


def test_the_site_name_rule_is_the_site_files():
    assert topics.NAME == NAME


@pytest.mark.parametrize(("host", "cert", "key", "fine"), [
    ("127.0.0.1", None, None, True), ("::1", None, None, True), ("localhost", None, None, True),
    ("0.0.0.0", None, None, False), ("192.0.2.4", None, None, False), ("192.0.2.4", "c.pem", "k.pem", True),
    ("127.0.0.1", "c.pem", None, False),
])
def test_the_web_page_is_loopback_only_unless_given_tls_files(host, cert, key, fine):
    if fine:
        check_listen(host, cert, key)
    else:
        with pytest.raises(ValueError, match="loopback|go together"):
            check_listen(host, cert, key)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "10.0.0.1", "example.org", "0.0.0.0"])
def test_the_loopback_rule_is_the_panels(host):
    from centre.web import is_loopback as centre_rule
    assert centre_rule(host) == is_loopback(host)


@pytest.mark.parametrize(("text", "expected"), [
    ("broker:1884", ("broker", 1884)), ("broker", ("broker", 1883)), ("[::1]:8883", ("::1", 8883)),
    ("::1", ("::1", 1883)), ("[::1]", ("::1", 1883)),
])
def test_broker_addresses(text, expected):
    assert parse_host_port(text, 1883) == expected


@pytest.mark.parametrize("text", ["broker:0", "broker:x", ":1883", "[::1]x", "broker:70000"])
def test_bad_broker_addresses_are_refused_in_words(text):
    with pytest.raises(ValueError, match=r"port|host|\["):
        parse_host_port(text, 1883)


def test_the_commands_and_their_defaults():
    args = parser().parse_args(["status", "--json"])
    assert args.prefix == "barrier-supervisor/#" and args.broker == "127.0.0.1:1883" and args.json
    assert parser().parse_args(["web"]).listen == "127.0.0.1:8090"
    assert {"status", "watch", "web"} <= set(parser()._subparsers._group_actions[0].choices)
