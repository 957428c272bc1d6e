"""barrierctl's arguments, help, "did you mean", completion script and --wait, without a daemon (fake status)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from controller.cli import main, parse
from controller.cli_parser import build_parser, to_request, unknown_command
from controller.cli_wait import open_share, wait_in_place
from controller.completion import bash_script, names
from controller.exit_codes import ExitCode

NAMES = {"devices": {"gate-1": ["open", "close", "stop", "reset"], "blocker-1": ["open", "close", "raise", "lower"]},
         "lanes": ["lane-1"]}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=100)


@pytest.mark.parametrize(("argv", "hint"), [
    (["opne", "gate-1"], "did you mean 'open'"), (["--socket", "/x", "stauts"], "did you mean 'status'"),
    (["lokdown"], "did you mean 'lockdown'"), (["xyzzy"], "commands: status"),
])
def test_a_mistyped_command_is_named_with_the_nearest_one(argv, hint, capsys):
    assert main(argv) == ExitCode.USAGE
    assert hint in capsys.readouterr().err


def test_known_commands_pass_the_check():
    assert unknown_command(["--socket", "/x", "open", "gate-1"], build_parser()) is None


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("barrierctl ")


def test_help_names_the_devices_that_take_the_verb_and_shows_an_example():
    text = build_parser(NAMES)._subparsers._group_actions[0].choices["raise"].format_help()  # noqa: SLF001
    assert "barrierctl raise blocker-1 --wait" in text
    assert "devices of this site that take raise: blocker-1" in text and "gate-1" not in text.split("take raise:")[1]
    assert "--wait" in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["baseline", "reset", "gate-1", "--reason", "new drive"], ("baseline_reset", {"device": "gate-1",
                                                                                  "reason": "new drive"})),
    (["service", "blocker-1", "--reason", "seals changed"], ("service", {"device": "blocker-1",
                                                                         "reason": "seals changed"})),
    (["health", "--json"], ("health", {})),
])
def test_condition_commands_become_their_requests(argv, expected):
    assert to_request(parse(argv)) == expected


def test_baseline_reset_and_service_need_a_reason(capsys):
    assert parse(["service", "gate-1"]) == ExitCode.USAGE
    assert parse(["baseline", "gate-1", "--reason", "x"]) == ExitCode.USAGE  # the action is `reset`
    assert "--reason" in capsys.readouterr().err


def test_usage_errors_exit_2_and_text_that_is_not_unicode_is_refused(capsys):
    assert parse(["open"]) == ExitCode.USAGE
    assert parse(["lockdown", "--reason", "intruder\udcff"]) == ExitCode.USAGE
    assert "not valid Unicode" in capsys.readouterr().err


def test_the_completion_script_lists_commands_and_asks_the_daemon_for_names():
    script = bash_script(["status", "open", "lane", "names"], ["open"])
    assert 'compgen -W "status open lane"' in script and "names devices --verb" in script
    assert "complete -F _barrierctl barrierctl" in script
    status = {"devices": [{"name": "gate-1", "verbs": ["open"]}, {"name": "signal-1", "verbs": ["green"]}],
              "lanes": [{"name": "lane-1"}]}
    assert names(status, "devices", "open") == ["gate-1"] and names(status, "lanes", None) == ["lane-1"]


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def statuses(*devices: dict):
    """A status function answering each device dict in turn, then the last one for ever."""
    answers = list(devices)

    def status() -> dict:
        return {"devices": [answers.pop(0) if len(answers) > 1 else answers[0]]}
    return status


def gate(state: str, position: int | None, quality: str = "good", reason: str | None = None) -> dict:
    return {"name": "gate-1", "state": state, "display": state, "position": position, "quality": quality,
            "reason": reason, "travel_limit_s": 4.5}


def test_wait_follows_the_travel_until_the_device_is_in_place():
    fake = FakeTime()
    status = statuses(gate("opening", 900), gate("opening", 400), gate("open", 0))
    waited = wait_in_place(status, "gate-1", "open", quiet(), fake.clock, fake.sleep)
    assert waited.code is ExitCode.DONE and "gate-1 open: in place" in waited.message


@pytest.mark.parametrize(("last", "why"), [
    (gate("fault", 500, reason="PLC fault: drive overload"), "fault"),
    (gate("unknown", None, quality="invalid", reason="comms lost"), "data are invalid"),
    (gate("local", 500), "local control"),
    (gate("stopped", 500), "within its travel time"),
])
def test_wait_exits_1_with_the_reason_when_the_device_will_not_get_there(last, why):
    fake = FakeTime()
    waited = wait_in_place(statuses(gate("opening", 900), last), "gate-1", "open", quiet(), fake.clock, fake.sleep)
    assert waited.code is ExitCode.ERROR and why in waited.message
    assert fake.now < 4.5 + 2.0 + 1.0, "gave up at the travel limit, not later"


def test_progress_is_the_share_of_travel_toward_the_goal():
    assert open_share(gate("opening", 250), {"open"}) == 75.0
    assert open_share(gate("closing", 250), {"closed"}) == 25.0
    assert open_share({"state": "red", "position": 0xFFFF}, {"closed", "red"}) == 100.0
    assert open_share({"state": "green", "position": None}, {"closed", "red"}) is None
