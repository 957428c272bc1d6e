"""The health view for people: per device its cycles, service, travel times against baseline and limit, drift,
EFO readiness, and a sparkline of its last travels per direction, drawn with rich and `sparklines`.

Every cell is a rich `Text` (people's text verbatim, see render.py). Anything the reply lacks is shown as "-",
a value of the wrong type as it came: the view never invents a state that was not observed.
"""

from __future__ import annotations

import math
import time

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from sparklines import sparklines

from controller.render import cell, plain
from hal.kinds import KINDS

SPARK_TRAVELS = 20  # the last travels drawn per direction
DIRECTIONS = ("open", "closed", "efo")
READINESS_BADGE = {"ready": (" READY ", "bold black on green"), "degraded": (" DEGRADED ", "bold black on yellow"),
                   "not_ready": (" NOT READY ", "bold white on red"), "unknown": (" UNKNOWN ", "bold magenta")}
OVER_LIMIT, OVER_DRIFT, UNDER, UNTIMED = "bold red", "yellow", "green", "dim"
LEGEND = ("sparklines: the last travels, oldest first, on a scale from 0 to the limit (a full bar is at or over it): "
          "green under the drift warning level, yellow over it, red over the limit, · not timed")


def number(value: object) -> float | None:
    """A finite number from the reply, or None (a missing value, a bool, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def seconds(ms: object) -> str:
    value = number(ms)
    return "-" if value is None else f"{value / 1000:.2f} s"


def way_word(kind: object, direction: str) -> str:
    """"to open", "to raised", "EFO raise": a direction as a guard says it for this kind."""
    if direction == "efo":
        return "EFO raise"
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    return f"to {spec.state_words.get(direction, direction) if spec else direction}"


def spark(recent: object, limit_ms: object, warn_ms: object) -> Text:
    """The last travels as a sparkline from 0 to the limit (or the slowest travel, if over it), each bar coloured
    against the drift warning level and the limit; an untimed travel (0 ms) as a dot."""
    values = [number(v) for v in recent] if isinstance(recent, list) else []
    values = values[-SPARK_TRAVELS:]
    if not values:
        return Text("no travels yet", style="dim")
    limit, warn = number(limit_ms), number(warn_ms)
    timed = [v for v in values if v is not None and v > 0]
    top = max([*timed, limit or 0.0]) or 1.0
    bars = sparklines([v if v is not None and v > 0 else None for v in values], minimum=0, maximum=top)[0] \
        if timed else "·" * len(values)  # sparklines draws nothing at all for only missing values
    line = Text()
    for value, bar in zip(values, bars, strict=True):
        if value is None or value <= 0:
            line.append("·", style=UNTIMED)
        else:
            line.append(bar, style=OVER_LIMIT if limit is not None and value > limit
                        else OVER_DRIFT if warn is not None and value > warn else UNDER)
    return line


def drift_cell(timing: object, warn_ms: object) -> Text:
    """The recent median's distance from the baseline, in %; yellow past the drift warning level."""
    timing = timing if isinstance(timing, dict) else {}
    drift = number(timing.get("drift"))
    if drift is None:
        return Text("-", style="dim")
    median, warn = number(timing.get("recent_median")), number(warn_ms)
    text = Text(f"{drift * 100:+.0f} %")
    if median is not None and warn is not None and median > warn:
        text.stylize(OVER_DRIFT)
    return text


def baseline_cell(timing: object) -> Text:
    """The baseline, or how far its collection has got."""
    if not isinstance(timing, dict):
        return Text("no baseline yet", style="dim")
    if number(timing.get("baseline")) is not None:
        return Text(seconds(timing["baseline"]))
    return Text(f"collecting {plain(timing.get('baseline_samples'))}/{plain(timing.get('baseline_of'))}", style="dim")


def last_cell(direction: dict) -> Text:
    """The last travel's time (red over the limit) and its id in the travels table."""
    recent, ids = direction.get("recent_ms"), direction.get("recent_ids")
    if not isinstance(recent, list) or not recent:
        return Text("-", style="dim")
    limit, last = number(direction.get("limit_ms")), number(recent[-1])
    text = Text(seconds(last), style=OVER_LIMIT if limit is not None and last is not None and last > limit else "")
    if isinstance(ids, list) and ids:
        text.append(f"\n#{plain(ids[-1])}", style="dim")
    return text


def limit_cell(direction: dict) -> Text:
    """The limit, and the drift warning level once there is a baseline."""
    text = Text(seconds(direction.get("limit_ms")))
    if number(direction.get("drift_warn_ms")) is not None:
        text.append(f"\nwarn {seconds(direction['drift_warn_ms'])}", style="dim")
    return text


def readiness_lines(readiness: object) -> Text | None:
    """A blocker's EFO readiness: a badge, its values, each reason on a line; None for a kind without EFO."""
    if not isinstance(readiness, dict):
        return None
    state = plain(readiness.get("state"))
    word, style = READINESS_BADGE.get(state, (f" {state} ", "bold"))
    text = Text("EFO readiness ")
    text.append(word, style=style)
    values = [f"{v:.1f} {unit}" for key, unit in (("pressure_bar", "bar"), ("oil_c", "°C oil"),
                                                   ("decay_bar_per_min", "bar/min lost idle"))
              if (v := number(readiness.get(key))) is not None]
    if values:
        text.append("  " + ", ".join(values), style="dim")
    reasons = readiness.get("reasons")
    for reason in reasons if isinstance(reasons, list) else []:
        text.append(f"\n  {plain(reason)}")
    return text


def heading(device: dict) -> Text:
    """The device's name and kind, its cycles, since its last service against the interval, SERVICE DUE."""
    kind = device.get("kind")
    text = Text(plain(device.get("name")), style="bold")
    text.append(f" ({KINDS[kind].word if isinstance(kind, str) and kind in KINDS else plain(kind)})")
    cycles = device.get("cycles")
    text.append(f"  cycles {plain(cycles if cycles is not None else '-')}")
    since, interval = device.get("cycles_since_service"), device.get("service_cycles")
    if since is not None or interval is not None:
        text.append(f", {plain(since if since is not None else '-')} of "
                    f"{plain(interval if interval is not None else 'no interval')} since service")
    if device.get("service_due") is True:
        text.append("  ")
        text.append(" SERVICE DUE ", style="bold black on yellow")
    return text


def notes(device: dict) -> Text:
    """What is wrong in words (drift, EFO readiness), and who serviced it last."""
    text = Text()
    conditions = device.get("conditions")
    for code, reason in conditions.items() if isinstance(conditions, dict) else []:
        if code not in ("SERVICE_DUE", "EFO_NOT_READY"):  # said in the heading and the readiness lines
            text.append(f"{plain(code)}: {plain(reason)}\n", style="yellow")
    if (readiness := readiness_lines(device.get("readiness"))) is not None:
        text.append_text(readiness)
        text.append("\n")
    last = device.get("last_service")
    if isinstance(last, dict):
        text.append(f"last service {stamp_day(last.get('ts'))} by {plain(last.get('by'))}: "
                    f"{plain(last.get('reason'))}\n", style="dim")
    text.rstrip()
    return text


def stamp_day(ts: object) -> str:
    value = number(ts)
    try:
        return "-" if value is None else time.strftime("%Y-%m-%d", time.localtime(value))
    except (OverflowError, OSError, ValueError):
        return "-"


def shown_directions(device: dict) -> list[str]:
    """Open and closed always; EFO raises for a kind with EFO readiness, or once one was timed."""
    directions = device.get("directions") if isinstance(device.get("directions"), dict) else {}
    efo = directions.get("efo") if isinstance(directions.get("efo"), dict) else {}
    has_efo = device.get("readiness") is not None or bool(efo.get("recent_ms"))
    return [d for d in DIRECTIONS if d != "efo" or has_efo]


def device_table(device: dict) -> Table:
    """One row per direction the device travels: last travel, baseline, limit, drift, the sparkline."""
    table = Table(title=heading(device), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("travel", "last", "baseline", "limit", "drift"):
        table.add_column(col, overflow="fold")
    table.add_column(f"last {SPARK_TRAVELS} travels", no_wrap=True, min_width=SPARK_TRAVELS)  # a bar per travel
    directions = device.get("directions") if isinstance(device.get("directions"), dict) else {}
    for key in shown_directions(device):
        way = directions.get(key) if isinstance(directions.get(key), dict) else {}
        table.add_row(cell(way_word(device.get("kind"), key)), last_cell(way), baseline_cell(way.get("timing")),
                      limit_cell(way), drift_cell(way.get("timing"), way.get("drift_warn_ms")),
                      spark(way.get("recent_ms"), way.get("limit_ms"), way.get("drift_warn_ms")))
    return table


def health_view(health: dict) -> Group:
    """Per device its table and its notes, then the sparklines' legend."""
    devices = health.get("devices") if isinstance(health, dict) else None
    devices = [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
    parts: list = [Text(f"condition of {len(devices)} device{'' if len(devices) == 1 else 's'}", style="bold")]
    for device in devices:
        parts.append(device_table(device))
        if (said := notes(device)).plain:
            parts.append(said)
        parts.append(Text())
    if not devices:
        parts.append(Text("no device travels between limits on this site", style="dim"))
    parts.append(Text(LEGEND, style="dim"))
    return Group(*parts)
