"""docs/state-machines.md from the device and lane machines' own transitions: Mermaid diagrams and tables."""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from transitions import Machine

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"
REGENERATE = "python -m controller.state_diagrams"
GROUP_MIN = 3  # a trigger from this many states or more is drawn as one arrow from a group node
NOT_DESCRIBED = "*not described: add it to controller/state_diagrams.py*"

DEVICE_STATES = {
    "unknown": "no good PLC data (not read yet, stale, invalid, comms lost); no older value is carried over",
    "open": "open limit made: passable",
    "closed": "closed limit made: not passable",
    "opening": "drive running toward open",
    "closing": "drive running toward closed",
    "stopped": "between the limits, drive stopped",
    "fault": "drive fault or fault code from the PLC, both limits made, or a fault barrierd latched "
             "(travel timeout) until `reset`",
    "local": "a person at the cabinet has it: key switch in LOCAL or manual release engaged",
}
KIND_STATES = {  # where a kind's state means something else than DEVICE_STATES says
    "traffic_signal": {
        "red": "red aspect shown, green off: secured",
        "green": "green aspect shown, red off: passable",
        "unknown": DEVICE_STATES["unknown"] + "; or neither or both aspects shown without a lamp fault",
        "fault": "lamp fault reported by the PLC",
        "local": "a person at the cabinet has it: key switch in LOCAL",
    },
}
LANE_MODES = {
    "unknown": "some device's data are not good, or the lane was not read yet",
    "open": "every device open (derived from the devices on every reading)",
    "securing": "a secure sequence is running, one confirmed step at a time",
    "secured": "every device secured (derived)",
    "opening": "an open sequence is running",
    "mixed": "some devices secured, others not (derived)",
    "lockdown": "latched by a lockdown; left only by a release",
    "maintenance": "latched by a technician; no automatic sequence runs",
    "fault": "a sequence failed or was cut short by a restart; latched until the next sequence",
}
TRIGGERS = {
    "sense_": "a reading shows the state `{}`",
    "travel_timed_out": "no limit reached within travel time × factor: the fault is latched until `reset`",
    "begin_secure": "`lane secure`, or a secure sequence started by barrierd",
    "begin_open": "`lane open` on a secured lane",
    "sequence_done": "every step of the running sequence confirmed",
    "sequence_failed": "a step was refused, or its device did not reach its state in time",
    "lock": "a lockdown of the site or of this lane",
    "show_": "the devices show `{}` (on a reading, or on leaving a latch)",
    "enter_maintenance": "`maintenance enter`",
}


@dataclass(frozen=True)
class Edge:
    """One declared transition: `dest` None is an internal transition (no exit, no entry)."""

    trigger: str
    source: str
    dest: str | None
    conditions: tuple[str, ...] = ()


def state_words(machine: Machine) -> dict[str, str]:
    """State name → the word the project uses for it: an enum state's value, else its name."""
    return {name: str(getattr(state.value, "value", name)) for name, state in machine.states.items()}


def declared_edges(machine: Machine) -> list[Edge]:
    """Every transition the machine declares, in declaration order, from its public events."""
    words = state_words(machine)
    edges = []
    for name, event in machine.events.items():
        for transitions in event.transitions.values():
            for transition in transitions:
                guards = tuple(
                    ("" if condition.target else "not ") + _callable_name(condition.func)
                    for condition in transition.conditions
                )
                dest = None if transition.dest is None else words[transition.dest]
                edges.append(Edge(name, words[transition.source], dest, guards))
    return edges


def _callable_name(func) -> str:
    return func if isinstance(func, str) else getattr(func, "__name__", repr(func))


def _label(edge: Edge) -> str:
    return edge.trigger + (f" [{' and '.join(edge.conditions)}]" if edge.conditions else "")


@dataclass(frozen=True)
class Arrow:
    """The transitions of one trigger (and guard) into one state; `group` names their sources when they are
    drawn as one arrow from a group node, None when they are drawn one by one."""

    trigger: str
    dest: str
    sources: tuple[str, ...]
    label: str
    group: str | None


def arrows(machine: Machine) -> list[Arrow]:
    """Every state change the machine declares, by trigger and destination; internal ones are left out."""
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for edge in declared_edges(machine):
        if edge.dest is not None:
            grouped[(edge.trigger, edge.dest, _label(edge))].append(edge.source)
    unions = Counter(frozenset({*sources, dest}) for (_, dest, _), sources in grouped.items() if dest not in sources)
    return [Arrow(trigger, dest, tuple(sources), label, _group(machine, sources, dest, unions))
            for (trigger, dest, label), sources in grouped.items()]


def _group(machine: Machine, sources: list[str], dest: str, unions: Counter) -> str | None:
    """For two sources or more: "every other state" when they are all states but `dest`; "every other of …"
    when triggers share that pattern over some states (a family of triggers, each leading to one of them);
    "any of …" for GROUP_MIN sources or more. Else None: drawn arrow by arrow."""
    states = list(state_words(machine).values())

    def listed(names) -> str:
        return ", ".join(state for state in states if state in names)

    union = frozenset({*sources, dest})
    if len(sources) == 1:
        return None
    if dest not in sources and union == set(states):
        return "every other state"
    if dest not in sources and unions[union] > 1:
        return f"every other of {listed(union)}"
    if len(sources) >= GROUP_MIN:
        return f"any of {listed(sources)}"
    return None


def mermaid(machine: Machine) -> str:
    """A stateDiagram-v2 of every state change the machine declares: the transitions of one trigger from
    many states are drawn as one arrow from a dashed group node; internal transitions are not drawn."""
    nodes: dict[str, str] = {}  # group words → node id
    lines: dict[tuple[str, str], list[str]] = defaultdict(list)
    for arrow in arrows(machine):
        if arrow.group is None:
            for source in arrow.sources:
                lines[(source, arrow.dest)].append(arrow.label)
            continue
        node = nodes.setdefault(arrow.group, f"group_{len(nodes) + 1}")
        lines[(node, arrow.dest)].append(arrow.label)
    out = ["stateDiagram-v2"]
    out += [f'    state "{words}" as {node}' for words, node in nodes.items()]
    out.append(f"    [*] --> {state_words(machine)[machine.initial]}")
    out += [f"    {source} --> {dest}: {', '.join(labels)}" for (source, dest), labels in lines.items()]
    if nodes:
        out += ["    classDef group stroke-dasharray: 5 5", f"    class {', '.join(nodes.values())} group"]
    return "\n".join(out)


def _describe_trigger(trigger: str) -> str:
    for key, text in TRIGGERS.items():
        if key.endswith("_") and trigger.startswith(key):
            return text.format(trigger.removeprefix(key))
        if trigger == key:
            return text
    return NOT_DESCRIBED


def _names(states) -> str:
    return ", ".join(f"`{state}`" for state in states)


def trigger_table(machine: Machine) -> list[str]:
    """One row per trigger and destination: where from, and where the trigger is internal."""
    internal: dict[str, list[str]] = defaultdict(list)
    for edge in declared_edges(machine):
        if edge.dest is None:
            internal[edge.trigger].append(edge.source)
    rows = ["| trigger | from | to | meaning |", "|---|---|---|---|"]
    for arrow in arrows(machine):
        sources = arrow.group or _names(arrow.sources)
        meaning = _describe_trigger(arrow.trigger)
        if arrow.label != arrow.trigger:
            meaning += f"; guarded: {arrow.label.removeprefix(arrow.trigger).strip()}"
        if internal.get(arrow.trigger):
            meaning += f"; in {_names(internal.pop(arrow.trigger))} it is internal: nothing changes"
        rows.append(f"| `{arrow.trigger}` | {sources} | `{arrow.dest}` | {meaning} |")
    for trigger, sources in internal.items():  # a trigger that is only ever internal
        rows.append(f"| `{trigger}` | {_names(sources)} | (stays) | {_describe_trigger(trigger)} |")
    return rows


def state_table(machine: Machine, meanings: dict[str, str], shown: dict[str, list[str]] | None = None) -> list[str]:
    """One row per state: its meaning, how people read it where a kind words it otherwise, its timeout."""
    rows = ["| state | meaning |", "|---|---|"]
    words = state_words(machine)
    for name, state in machine.states.items():
        name = words[name]
        text = meanings.get(name, NOT_DESCRIBED)
        if shown and shown.get(name):
            text += "; shown as " + ", ".join(shown[name])
        if getattr(state, "timeout", 0):
            ends = ", ".join(_callable_name(f) for f in state.on_timeout)
            text += f"; timed: after travel time × factor, `{ends}`"
        rows.append(f"| `{name}` | {text} |")
    return rows


# ----- the project's machines -----------------------------------------------------------------------


def devices_by_machine() -> list[list]:
    """One device of every kind, grouped by kinds whose machines declare the same states and transitions."""
    from config.schema import DeviceSection
    from controller.devices import DEVICE_CLASSES

    groups: dict[str, list] = defaultdict(list)
    for kind, cls in DEVICE_CLASSES.items():
        device = cls(DeviceSection(name="doc", kind=kind, plc="doc", slot=0))
        device.detach()
        groups[mermaid(device.machine) + "\n".join(state_table(device.machine, {}))].append(device)
    return list(groups.values())


def lane_machine() -> tuple[type, Machine]:
    from config.schema import LaneSection
    from controller.lanes import Lane

    lane = Lane(LaneSection(name="doc"), None)
    return Lane, lane.machine


def _shared_base(classes: list[type]) -> type:
    """The most derived class every one of `classes` inherits from."""
    return next(base for base in classes[0].__mro__ if all(issubclass(cls, base) for cls in classes))


def _doc_of(cls: type) -> str:
    return (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip()


def _section(title: str, intro: str, machine: Machine, meanings: dict[str, str], shown=None) -> list[str]:
    return [f"## {title}", "", intro, "", "```mermaid", mermaid(machine), "```", "",
            *state_table(machine, meanings, shown), "", *trigger_table(machine), ""]


def render() -> str:
    """The whole of docs/state-machines.md."""
    out = [
        "# State machines",
        "",
        f"Generated from the machines' own transitions by `{REGENERATE}` (`make docs`); "
        "`tests/unit/test_state_diagrams.py` fails when this file and the code disagree. Do not edit it by "
        "hand: change the machines, or the descriptions in `controller/state_diagrams.py`, and regenerate.",
        "",
        "A dashed node stands for the states it names: one arrow from it is one transition from each of them. "
        "Internal transitions (the trigger is taken, the state neither exits nor re-enters) are not drawn; "
        "the trigger tables name them.",
        "",
        "A device's state is what its latest PLC reading shows: each reading fires `sense_<state>`, so any "
        "state can follow any other. Seeing the state it is already in is internal: a travel timer keeps "
        "running. Commands do not change a device's state; the feedback that follows does.",
        "",
    ]
    for devices in devices_by_machine():
        machine = devices[0].machine
        shown = defaultdict(list)
        for device in devices:
            for state in state_words(machine).values():
                if device.shown(state) != state:
                    shown[state].append(f"{device.shown(state)} ({device.cfg.kind.replace('_', ' ')})")
        title = "Device: " + ", ".join(device.cfg.kind.replace("_", " ") for device in devices)
        intro = _doc_of(_shared_base([type(device) for device in devices]))
        meanings = DEVICE_STATES | KIND_STATES.get(devices[0].cfg.kind, {})
        out += _section(title, intro, machine, meanings, shown)
    lane_cls, machine = lane_machine()
    out += _section("Lane", _doc_of(lane_cls), machine, LANE_MODES)
    return "\n".join(out)


def undescribed() -> list[str]:
    """States and triggers the document leaves without a meaning."""
    return [line for line in render().splitlines() if NOT_DESCRIBED in line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Rewrite docs/state-machines.md from the machines.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs, writing nothing")
    args = parser.parse_args(argv)
    text = render() + "\n"
    if args.check:
        same = DOC_PATH.exists() and DOC_PATH.read_text(encoding="utf-8") == text
        print(f"{DOC_PATH.name} {'matches the machines' if same else f'differs: run `{REGENERATE}`'}")
        return 0 if same else 1
    DOC_PATH.parent.mkdir(exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
