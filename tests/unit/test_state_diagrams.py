"""docs/state-machines.md matches the machines, and the generator draws what the machines declare."""

from __future__ import annotations

import difflib
import enum

from transitions import Machine

from controller import state_diagrams
from controller.state_diagrams import (
    DOC_PATH, REGENERATE, lane_machine, mermaid, render, state_table, trigger_table,
)


def test_the_document_matches_the_machines():
    expected = render() + "\n"
    actual = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    diff = "".join(list(difflib.unified_diff(
        actual.splitlines(keepends=True), expected.splitlines(keepends=True), "docs/state-machines.md", "generated",
    ))[:40])
    assert actual == expected, f"docs/state-machines.md differs from the machines: run `{REGENERATE}`\n{diff}"


def test_every_state_and_trigger_is_described():
    assert state_diagrams.undescribed() == [], "describe them in controller/state_diagrams.py"


def test_a_transition_added_to_the_lane_machine_is_drawn():
    _, machine = lane_machine()  # a lane's machine is its own: changing it touches no other lane
    assert "mixed --> opening" not in mermaid(machine)
    machine.add_transition("begin_open", "mixed", "opening")
    assert "    mixed --> opening: begin_open" in mermaid(machine).splitlines()


def toy(transitions: list[dict]) -> Machine:
    return Machine(model=None, states=["a", "b", "c"], initial="a", transitions=transitions, auto_transitions=False)


def test_a_trigger_from_every_other_state_is_drawn_once_and_internal_ones_not_at_all():
    machine = toy([
        {"trigger": "to_c", "source": ["a", "b"], "dest": "c"},
        {"trigger": "to_c", "source": "c", "dest": None},
    ])
    assert mermaid(machine).splitlines() == [
        "stateDiagram-v2",
        '    state "every other state" as group_1',
        "    [*] --> a",
        "    group_1 --> c: to_c",
        "    classDef group stroke-dasharray: 5 5",
        "    class group_1 group",
    ]
    assert trigger_table(machine)[2].startswith("| `to_c` | every other state | `c` |")
    assert "in `c` it is internal" in trigger_table(machine)[2]


def test_a_trigger_from_fewer_states_is_drawn_arrow_by_arrow():
    machine = toy([{"trigger": "to_c", "source": "a", "dest": "c"}, {"trigger": "back", "source": "c", "dest": "a"}])
    assert mermaid(machine).splitlines() == ["stateDiagram-v2", "    [*] --> a", "    a --> c: to_c", "    c --> a: back"]


def test_a_family_of_triggers_among_some_states_shares_one_group_node():
    machine = Machine(model=None, states=["a", "b", "c", "d", "e"], initial="a", auto_transitions=False)
    for target in ("a", "b", "c"):
        machine.add_transition(f"show_{target}", [s for s in "abcd" if s != target], target)
    machine.add_transition("go", ["e", "a", "b"], "d")
    lines = mermaid(machine).splitlines()
    assert lines[1:3] == ['    state "every other of a, b, c, d" as group_1', '    state "any of a, b, e" as group_2']
    assert lines[4:8] == ["    group_1 --> a: show_a", "    group_1 --> b: show_b", "    group_1 --> c: show_c",
                          "    group_2 --> d: go"]


def test_triggers_between_the_same_states_share_one_arrow_and_guards_are_named():
    machine = toy([
        {"trigger": "go", "source": "a", "dest": "b", "conditions": "ready"},
        {"trigger": "jump", "source": "a", "dest": "b", "unless": "blocked"},
    ])
    assert "    a --> b: go [ready], jump [not blocked]" in mermaid(machine).splitlines()
    assert "guarded: [not blocked]" in trigger_table(machine)[3]


def test_check_reports_a_stale_document_and_writing_makes_it_current(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(state_diagrams, "DOC_PATH", tmp_path / "docs" / "state-machines.md")
    assert state_diagrams.main(["--check"]) == 1
    assert REGENERATE in capsys.readouterr().out
    assert state_diagrams.main([]) == 0
    assert state_diagrams.main(["--check"]) == 0
    assert (tmp_path / "docs" / "state-machines.md").read_text(encoding="utf-8") == render() + "\n"


class Mode(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"


def test_enum_states_are_drawn_and_described_by_their_values():
    machine = Machine(model=None, states=Mode, initial=Mode.IDLE, auto_transitions=False)
    machine.add_transition("start", Mode.IDLE, Mode.BUSY)
    machine.add_transition("finish", Mode.BUSY, Mode.IDLE)
    assert mermaid(machine).splitlines() == ["stateDiagram-v2", "    [*] --> idle", "    idle --> busy: start",
                                             "    busy --> idle: finish"]
    assert state_table(machine, {"idle": "waiting", "busy": "working"})[2:] == ["| `idle` | waiting |",
                                                                                  "| `busy` | working |"]
