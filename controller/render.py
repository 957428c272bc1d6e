"""Tables for people: the status and the event list, drawn with rich; text from people and PLCs shown verbatim.

Every cell is a rich `Text`, never markup: a reason such as "car AB-123 [/] fled" is shown as typed, and
control characters (ANSI escapes included) are shown as escapes, not sent to the terminal. Any state,
mode or quality the code can produce has a style, and one it does not know is shown plainly.
"""

from __future__ import annotations

import time
import unicodedata

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hal.kinds import KINDS

STATE_STYLE = {
    "open": "green", "lowered": "green", "green": "green",
    "closed": "bold", "raised": "bold", "red": "bold red",
    "opening": "yellow", "closing": "yellow", "lowering": "yellow", "raising": "yellow",
    "unknown": "magenta", "fault": "bold white on red", "local": "cyan", "stopped": "yellow",
}
MODE_STYLE = {"open": "green", "secured": "bold", "lockdown": "bold white on red", "fault": "bold red",
              "maintenance": "cyan", "unknown": "magenta", "opening": "yellow", "securing": "yellow",
              "mixed": "yellow"}
SEVERITY_STYLE = {"critical": "bold white on red", "fault": "bold red", "warning": "yellow", "info": ""}
FLAG_NOTES = {"VEHICLE_PRESENT": "vehicle on loop", "OBSTRUCTED": "obstructed", "EFO_ACTIVE": "EFO latched",
              "LOW_PRESSURE": "low pressure", "LOCAL": "local control", "MANUAL_RELEASE": "manual release",
              "DRIVE_FAULT": "drive fault", "SENSOR_FAULT": "sensor fault", "LAMP_FAULT": "lamp fault",
              "OIL_TEMP": "oil temperature"}


def plain(value: object) -> str:
    """Any value as printable text: control and format characters shown as escapes, nothing interpreted."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(char: str) -> str:
    if unicodedata.category(char) == "Cs":  # a lone surrogate (text that was not valid UTF-8)
        return f"\\u{ord(char):04x}"
    return char.encode("unicode_escape").decode("ascii")


def cell(value: object, style: str = "") -> Text:
    return Text(plain(value), style=style)


def stamp(ts: object, fmt: str = "%H:%M:%S") -> str:
    try:
        return time.strftime(fmt, time.localtime(float(ts)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def headline(status: dict) -> Text:
    """The site line: its name, a lockdown and who set it, and a store that cannot record."""
    line = Text(f"site {plain(status.get('site'))}")
    latch = status.get("lockdown")
    if latch:
        line.append("  ")
        line.append(" LOCKDOWN ", style="bold white on red")
        line.append(f" by {plain(latch.get('by'))}: {plain(latch.get('reason'))}")
        if latch.get("persisted") is False:
            line.append("  NOT PERSISTED (storage failing)", style="bold red")
    storage = status.get("storage")
    if storage and not storage.get("ok", True):
        line.append("\n")
        line.append(" RECORDING FAILED ", style="bold white on red")
        line.append(f" {plain(storage.get('problem'))}; {storage.get('pending', 0)} records waiting. "
                    "Only securing commands are carried out.", style="bold red")
    return line


def lane_label(lane: dict) -> Text:
    mode = plain(lane.get("mode"))
    label = Text(f"{plain(lane.get('name'))} ")
    label.append(mode, style=MODE_STYLE.get(mode, ""))
    if lane.get("persisted") is False:
        label.append(" (not persisted)", style="bold red")
    if lane.get("mode") in ("fault", "mixed", "unknown", "lockdown", "maintenance") and lane.get("reason"):
        label.append(f"\n{plain(lane.get('reason'))}", style="dim")
    own = lane.get("lockdown")
    if own:
        label.append(f"\nown lockdown by {plain(own.get('by'))}: {plain(own.get('reason'))}", style="red")
    return label


def device_note(device: dict) -> str:
    notes = [FLAG_NOTES[f] for f in device.get("flags") or [] if f in FLAG_NOTES]
    if device.get("reason"):
        notes.insert(0, plain(device["reason"]))
    return "; ".join(notes)


def device_cell(device: dict) -> Text:
    """The name, and under it the kind in a word."""
    kind = plain(device.get("kind"))
    text = Text(plain(device.get("name")))
    text.append(f"\n{KINDS[kind].word if kind in KINDS else kind}", style="dim")
    return text


def state_cell(device: dict) -> Text:
    """The state as a guard reads it, and the data quality when it is not good."""
    display = plain(device.get("display", device.get("state")))
    text = Text(display, style=STATE_STYLE.get(display, ""))
    if device.get("quality") != "good":
        text.append(f"\n({plain(device.get('quality'))})", style="magenta")
    return text


def position(device: dict) -> str:
    value = device.get("position")
    return "-" if not isinstance(value, int) or value > 1000 else f"{value / 10:.0f} %"


def status_tables(status: dict) -> list:
    devices = Table(title=headline(status), title_justify="left")
    for col, width in (("lane", 12), ("device", 12), ("state", 8), ("pos", 5), ("last command", 8), ("note", 8)):
        devices.add_column(col, overflow="fold", min_width=width)
    by_name = {d["name"]: d for d in status.get("devices", [])}
    groups = [(lane_label(lane), lane.get("devices", [])) for lane in status.get("lanes", [])]
    in_lanes = {name for _, names in groups for name in names}
    groups.append((Text("-"), [n for n in by_name if n not in in_lanes]))
    for label, names in groups:
        shown = [n for n in names if n in by_name]
        for i, name in enumerate(shown):
            d = by_name[name]
            devices.add_row(label if i == 0 else "", device_cell(d), state_cell(d), position(d),
                            cell(f"{plain(d['intent'])} by {plain(d.get('intent_by'))}" if d.get("intent") else ""),
                            cell(device_note(d)), end_section=i == len(shown) - 1)
    plcs = Table(title="PLCs", title_justify="left")
    for col in ("plc", "comms", "watchdog ms", "note"):
        plcs.add_column(col, overflow="fold")
    for p in status.get("plcs", []):
        ok = p.get("comms") == "ok"
        plcs.add_row(cell(p.get("name")), cell(p.get("comms"), "green" if ok else "bold red"),
                     str(p.get("watchdog_ms") or "-"), cell("" if ok else p.get("reason")))
    tables: list = [devices, plcs]
    if status.get("alarms"):
        tables.append(alarms_table(status["alarms"], title="active alarms"))
    return tables


def status_view(status: dict) -> Group:
    return Group(*status_tables(status))


def alarms_table(alarms: list[dict], title: str = "alarms") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "raised", "severity", "code", "subject", "reason", "state"):
        table.add_column(col, overflow="fold")
    for a in alarms:
        state = ("active" if a.get("active") else "cleared") + (
            f", acked by {plain(a['acked_by'])}" if a.get("acked_by") else ", unacked")
        severity = plain(a.get("severity"))
        table.add_row(cell(a.get("id")), stamp(a.get("raised_at")), cell(severity, SEVERITY_STYLE.get(severity, "")),
                      cell(a.get("code")), cell(a.get("subject")), cell(a.get("message")), cell(state))
    return table


def event_lines(events: list[dict]) -> Text:
    """Events as plain lines (what `events --follow` prints as they come)."""
    return Text("\n".join(
        f"{e.get('id') or '-':>6}  {stamp(e.get('ts'), '%Y-%m-%d %H:%M:%S')}  {plain(e.get('kind')):<14} "
        f"{plain(e.get('subject')):<12} {plain(e.get('summary'))}"
        for e in events
    ))


def events_table(events: list[dict]) -> Table:
    table = Table(title="events", title_justify="left")
    for col in ("id", "time", "kind", "subject", "what"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(cell(e.get("id")), stamp(e.get("ts"), "%Y-%m-%d %H:%M:%S"), cell(e.get("kind")),
                      cell(e.get("subject")), cell(e.get("summary")))
    return table
