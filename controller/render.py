"""Tables for people: the status and the event list, drawn with rich."""

from __future__ import annotations

import time

from rich.table import Table

STATE_STYLE = {
    "open": "green", "lowered": "green", "green": "green",
    "closed": "bold", "raised": "bold", "red": "bold red",
    "opening": "yellow", "closing": "yellow", "lowering": "yellow", "raising": "yellow",
    "unknown": "magenta", "fault": "bold white on red", "local": "cyan", "stopped": "yellow",
}


MODE_STYLE = {"open": "green", "secured": "bold", "lockdown": "bold white on red", "fault": "bold red",
              "maintenance": "cyan", "unknown": "magenta"}


def status_tables(status: dict) -> list[Table]:
    latch = status.get("lockdown")
    title = f"site {status['site']}" + (f"  [bold white on red] LOCKDOWN [/] by {latch['by']}: {latch['reason']}" if latch else "")
    devices = Table(title=title, title_justify="left")
    for col in ("lane", "device", "kind", "state", "position", "plc", "quality", "last command", "note"):
        devices.add_column(col)
    by_name = {d["name"]: d for d in status["devices"]}
    groups = [(f"{lane['name']} [{MODE_STYLE.get(lane['mode'], '')}]{lane['mode']}[/]", lane["devices"])
              for lane in status.get("lanes", [])]
    in_lanes = {name for _, names in groups for name in names}
    groups.append(("-", [n for n in by_name if n not in in_lanes]))
    for label, names in groups:
        for i, name in enumerate(names):
            d = by_name[name]
            style = STATE_STYLE.get(d["display"], "")
            position = "-" if d["position"] is None else f"{d['position'] / 10:.0f} %"
            last = f"{d['intent']} by {d['intent_by']}" if d["intent"] else ""
            devices.add_row(label if i == 0 else "", d["name"], d["kind"], f"[{style}]{d['display']}[/]", position,
                            d["plc"], d["quality"], last, d["reason"] or "", end_section=i == len(names) - 1)
    plcs = Table(title="PLCs", title_justify="left")
    for col in ("plc", "comms", "watchdog ms", "note"):
        plcs.add_column(col)
    for p in status["plcs"]:
        style = "green" if p["comms"] == "ok" else "bold red"
        plcs.add_row(p["name"], f"[{style}]{p['comms']}[/]", str(p["watchdog_ms"] or "-"),
                     p["reason"] if p["comms"] != "ok" else "")
    tables = [devices, plcs]
    if status.get("alarms"):
        tables.append(alarms_table(status["alarms"], title="active alarms"))
    return tables


def alarms_table(alarms: list[dict], title: str = "alarms") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "raised", "severity", "code", "subject", "reason", "state"):
        table.add_column(col)
    for a in alarms:
        stamp = time.strftime("%H:%M:%S", time.localtime(a["raised_at"]))
        state = ("active" if a["active"] else "cleared") + (f", acked by {a['acked_by']}" if a["acked_by"] else ", unacked")
        style = "bold red" if a["severity"] in ("critical", "fault") else "yellow"
        table.add_row(str(a["id"]), stamp, f"[{style}]{a['severity']}[/]", a["code"], a["subject"], a["message"], state)
    return table


def event_lines(events: list[dict]) -> str:
    """Events as plain lines (what `events --follow` prints as they come)."""
    return "\n".join(
        f"{e['id']:>6}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['ts']))}  {e['kind']:<14} "
        f"{e['subject']:<12} {e['summary']}"
        for e in events
    )


def events_table(events: list[dict]) -> Table:
    table = Table(title="events", title_justify="left")
    for col in ("id", "time", "kind", "subject", "what"):
        table.add_column(col)
    for e in events:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"]))
        table.add_row(str(e["id"]), stamp, e["kind"], e["subject"], e["summary"])
    return table
