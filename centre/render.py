"""The fleet's picture for a terminal (rich): the status table, and the live view with each site's lanes drawn as lanes.

Every cell is a rich `Text`, never markup: names and reasons from the sites are shown as sent, control characters
as escapes. What is not current (`stale`, `unheard`, `unreadable`) is grey and hatched, an offline site red.
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATE_STYLE = {
    "open": "green", "lowered": "green", "green": "black on green",
    "closed": "bold", "raised": "bold", "red": "bold white on red",
    "opening": "yellow", "closing": "yellow", "lowering": "yellow", "raising": "yellow", "stopped": "yellow",
    "unknown": "magenta", "fault": "bold white on red", "local": "cyan",
    "offline": "bold red", "stale": "grey50", "unheard": "grey50", "unreadable": "grey50 italic",
}
MODE_STYLE = {"open": "green", "secured": "bold", "lockdown": "bold white on red", "fault": "bold red",
              "maintenance": "cyan", "unknown": "magenta", "opening": "yellow", "securing": "yellow",
              "mixed": "yellow", "offline": "bold red", "stale": "grey50", "unheard": "grey50",
              "unreadable": "grey50 italic"}
SITE_STYLE = {"online": "bold green", "offline": "bold white on red", "stale": "grey50", "unknown": "magenta",
              "unreadable": "magenta"}
NOT_CURRENT = frozenset({"stale", "unheard", "unreadable", "offline"})
HATCH = "░"


def plain(value: object) -> str:
    """Any value as printable text: control and format characters shown as escapes, nothing interpreted."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


def cell(value: object, style: str = "") -> Text:
    return Text(plain(value), style=style)


def stamp(ts: object) -> str:
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(ts)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def site_title(site: dict) -> Text:
    title = Text()
    if site.get("site"):
        title.append(plain(site["site"]) + "  ", style="bold")
    title.append(f"{plain(site['prefix'])}  ", style="dim")
    title.append(plain(site["state"].upper()), style=SITE_STYLE.get(site["state"], ""))
    if site["state"] == "offline" and site.get("reason"):
        title.append(f" ({plain(site['reason'])})", style="red")
    lockdown = site["lockdown"]["state"]
    if lockdown == "on":
        title.append("  LOCKDOWN", style="bold white on red")
    return title


def device_word(device: dict) -> str:
    return device["display"] if device.get("current") else device["state"]


def status_table(picture: dict) -> Table:
    """One row per device, grouped by site and lane, in travel order; `barrier-centre status` without --json."""
    table = Table(title="Fleet", show_lines=False)
    for column in ("site", "state", "lane", "mode", "device", "device state", "age s"):
        table.add_column(column)
    for site in picture["sites"]:
        site_cells = [cell(site.get("site") or site["prefix"], "bold"),
                      cell(site["state"], SITE_STYLE.get(site["state"], ""))]
        rows = [(lane, device) for lane in site["lanes"] for device in lane["devices"] or [None]]
        rows += [(None, device) for device in site["others"]]
        if not rows:
            table.add_row(*site_cells, "", "", "", "", "")
        for lane, device in rows:
            lane_cells = ([cell(lane["name"]), cell(lane["mode"], MODE_STYLE.get(lane["mode"], ""))]
                          if lane else [cell("(no lane)", "dim"), cell("")])
            device_cells = [cell(""), cell(""), cell("")]
            if device is not None:
                word = device_word(device)
                device_cells = [cell(device["name"]), cell(word, STATE_STYLE.get(word, "")),
                                cell("-" if device["age_s"] is None else f"{device['age_s']:.0f}")]
            table.add_row(*site_cells, *lane_cells, *device_cells)
            site_cells = [cell(""), cell("")]
        table.add_section()
    return table


def alarm_lines(site: dict) -> Text:
    alarms = site["alarms"]
    if alarms["state"] != "current":
        return cell(f"alarms {alarms['state']}", STATE_STYLE.get(alarms["state"], "magenta"))
    if not alarms["list"]:
        return cell("no active alarm", "green")
    out = Text()
    for alarm in alarms["list"]:
        out.append(f"{plain(alarm['code'])} ", style="bold red")
        out.append(f"{plain(alarm['subject'])}: {plain(alarm['message'])}  ")
    return out


def device_box(device: dict) -> Text:
    word = device_word(device)
    style = STATE_STYLE.get(word, "")
    if word in NOT_CURRENT:
        return Text(f"{HATCH}{plain(device['name'])} {word}{HATCH}", style=style)
    return Text(f"[{plain(device['name'])} {plain(word)}]", style=style)


def lane_row(lane: dict) -> Text:
    """A lane as a road: its mode, then its devices in the order an arriving vehicle meets them."""
    row = Text()
    row.append(f"{plain(lane['name']):<12}", style="bold")
    row.append(f"{plain(lane['mode']):<12}", style=MODE_STYLE.get(lane["mode"], ""))
    row.append("→ ", style="dim")
    for i, device in enumerate(lane["devices"]):
        if i:
            row.append(" ═ ", style="dim")
        row.append_text(device_box(device))
    return row


def site_panel(site: dict) -> Panel:
    lines: list[RenderableType] = [lane_row(lane) for lane in site["lanes"]]
    if site["others"]:
        others = Text("other devices  ", style="dim")
        for device in site["others"]:
            others.append_text(device_box(device))
            others.append("  ")
        lines.append(others)
    lines.append(alarm_lines(site))
    if site["rejected"]:
        lines.append(cell(f"{site['rejected']} unreadable message(s), last: {site['problem']}", "magenta"))
    border = {"online": "green", "offline": "red", "stale": "grey50"}.get(site["state"], "magenta")
    return Panel(Group(*lines), title=site_title(site), title_align="left", border_style=border)


def live_view(picture: dict, link: str) -> Group:
    """`barrier-centre watch`: one panel per site, with a line on the link to the broker."""
    header = Text(f"barrier-centre  {stamp(time.time())}  ", style="bold")
    header.append(plain(link), style="green" if link.startswith("connected") else "bold red")
    if not picture["sites"]:
        return Group(header, Text("no site heard yet", style="magenta"))
    return Group(header, *(site_panel(site) for site in picture["sites"]))
