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


def status_tables(status: dict) -> list[Table]:
    devices = Table(title=f"site {status['site']}", title_justify="left")
    for col in ("device", "kind", "state", "position", "plc", "quality", "last command", "note"):
        devices.add_column(col)
    for d in status["devices"]:
        style = STATE_STYLE.get(d["display"], "")
        position = "-" if d["position"] is None else f"{d['position'] / 10:.0f} %"
        last = f"{d['intent']} by {d['intent_by']}" if d["intent"] else ""
        devices.add_row(d["name"], d["kind"], f"[{style}]{d['display']}[/]", position, d["plc"], d["quality"],
                        last, d["reason"] or "")
    plcs = Table(title="PLCs", title_justify="left")
    for col in ("plc", "comms", "watchdog ms", "note"):
        plcs.add_column(col)
    for p in status["plcs"]:
        style = "green" if p["comms"] == "ok" else "bold red"
        plcs.add_row(p["name"], f"[{style}]{p['comms']}[/]", str(p["watchdog_ms"] or "-"),
                     p["reason"] if p["comms"] != "ok" else "")
    return [devices, plcs]


def events_table(events: list[dict]) -> Table:
    table = Table(title="events", title_justify="left")
    for col in ("id", "time", "kind", "subject", "what"):
        table.add_column(col)
    for e in events:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"]))
        table.add_row(str(e["id"]), stamp, e["kind"], e["subject"], e["summary"])
    return table
