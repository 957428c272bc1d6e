"""barrier-centre keygen and lockdown's arguments: a private key only its owner reads, usage refused before sending."""

from __future__ import annotations

import stat

from centre import protocol
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
