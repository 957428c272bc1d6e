"""barrier-centre keygen and lockdown's arguments: a private key only its owner reads, usage refused before sending."""

from __future__ import annotations

import json
import stat

from centre import protocol
from centre.broker import BrokerAddress
from centre.cli import main
from centre.lockdown_cli import EXIT_USAGE


def test_keygen_writes_a_0600_key_prints_the_site_line_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "hq.pem"
    assert main(["keygen", "--out", str(out), "--key-id", "hq-1"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    line = capsys.readouterr().out.strip().splitlines()[-1]
    key_id, _, text = line.partition(" = ")
    assert key_id == "hq-1"
    assert text.strip('"') == protocol.public_key_text(protocol.load_private_key(out.read_bytes()))
    before = out.read_bytes()
    assert main(["keygen", "--out", str(out)]) == EXIT_USAGE and out.read_bytes() == before
    assert "nothing written" in capsys.readouterr().err


def test_lockdown_usage_errors_send_nothing(tmp_path, capsys):
    key = tmp_path / "hq.pem"
    main(["keygen", "--out", str(key)])
    common = ["--reason", "r", "--operator", "o", "--key", str(key), "--key-id", "hq-1", "--broker", "127.0.0.1:1"]
    assert main(["lockdown", "--sites", "north", *common]) == EXIT_USAGE
    assert "no --prefix-of for north" in capsys.readouterr().err
    assert main(["lockdown", "--all", *common]) == EXIT_USAGE
    assert main(["lockdown", "--sites", "north", "--prefix-of", "north=a/#", *common]) == EXIT_USAGE
    assert main(["lockdown", "--sites", "north", "--prefix-of", "north=a", "--ttl", "61", *common]) == EXIT_USAGE
    assert "at most 60 s" in capsys.readouterr().err


def test_lockdown_json_prints_when_it_was_sent_and_each_sites_reply_or_null(tmp_path, capsys, monkeypatch):
    from centre import lockdown_cli
    from centre.lockdown_send import Outcome

    key = tmp_path / "hq.pem"
    main(["keygen", "--out", str(key)])
    capsys.readouterr()
    sent: dict = {}

    async def answered_by_north_only(broker, targets, envelope, command_id, wait_s):
        sent.update(broker=broker, targets=targets, wait_s=wait_s)
        devices = {"gate-1": protocol.device_outcome("closed", 1000.5, None)}
        reply = protocol.reply(command_id, "north", 1000.1, devices=devices, secured_s=0.4)
        return Outcome(id=command_id, sites=dict(targets), replies={"north": reply}, sent_at=1000.0)

    monkeypatch.setattr(lockdown_cli, "send_lockdown", answered_by_north_only)
    code = main(["lockdown", "--all", "--prefix-of", "north=b/north", "--prefix-of", "south=b/south", "--json",
                 "--reason", "drill", "--operator", "duty-1", "--key", str(key), "--key-id", "hq-1",
                 "--broker", "127.0.0.1:1883", "--wait", "3"])
    printed = json.loads(capsys.readouterr().out)
    assert code == lockdown_cli.EXIT_NOT_SECURED  # south never answered
    assert sent == {"broker": BrokerAddress("127.0.0.1", 1883), "targets": {"north": "b/north", "south": "b/south"}, "wait_s": 3.0}
    assert printed["sent_at"] == 1000.0 and printed["all_secured"] is False and printed["sites"]["south"] is None
    north = printed["sites"]["north"]
    assert north["id"] == printed["id"] and north["received_at"] == 1000.1 and north["secured_s"] == 0.4
    assert north["devices"]["gate-1"] == {"secured": True, "state": "closed", "secured_at": 1000.5, "why": None}
