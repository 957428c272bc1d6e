"""`--wait`: run a command while drawing its devices' travel, then wait until they are confirmed in place.

A device command is answered once the PLC has accepted it; with --wait barrierctl goes on reading the
status until the device reports the state the command asked for (exit 0), or a fault, local control,
data that are not valid, or its travel time passing say it will not (exit 1, with the reason). A lane
command or a lockdown is answered once confirmed; --wait draws the lane's devices meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from controller.exit_codes import ExitCode
from controller.render import plain

POLL_S = 0.2
MARGIN_S = 2.0  # beyond the device's travel limit before --wait gives up
# The state a device command asks for (the device's own state words; a blocker's "open" is lowered).
GOAL = {"open": {"open"}, "lower": {"open"}, "close": {"closed"}, "raise": {"closed"}, "green": {"green"},
        "red": {"red"}, "stop": {"stopped", "open", "closed"}}
HOPELESS = {"fault": "it reports a fault", "local": "it is under local control"}


@dataclass
class Waited:
    code: ExitCode
    message: str


def open_share(device: dict, goal: set[str]) -> float | None:
    """How far along toward the goal, 0..100, from POSITION (0 open .. 1000 closed); None without an encoder."""
    position = device.get("position")
    if not isinstance(position, int) or position > 1000:
        return 100.0 if device.get("state") in goal else None
    return (1000 - position) / 10 if goal & {"open", "green"} else position / 10


def run_with_progress(call: Callable[[], dict], status: Callable[[], dict], names: list[str], console: Console,
                      goal: set[str] | None = None) -> dict:
    """Run `call` (a blocking request) in a thread while drawing `names`' state and position; its reply."""
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(reply=call()), daemon=True)
    worker.start()
    with _bars(console) as bars:
        while worker.is_alive():
            _draw(bars, status(), names, goal)
            worker.join(POLL_S)
    return result["reply"]


def wait_in_place(status: Callable[[], dict], name: str, verb: str, console: Console,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Waited:
    """Read the status until device `name` is where `verb` sends it, or cannot get there."""
    if verb == "reset":
        return Waited(ExitCode.DONE, f"{name}: reset accepted")
    goal = GOAL[verb]
    deadline = None
    with _bars(console) as bars:
        while True:
            device = _draw(bars, status(), [name], goal).get(name)
            if device is None:
                return Waited(ExitCode.ERROR, f"{name}: not in the status any more")
            state = device.get("state")
            if device.get("quality") == "good" and state in goal:
                return Waited(ExitCode.DONE, f"{name} {plain(device.get('display', state))}: in place")
            if state in HOPELESS:
                return Waited(ExitCode.ERROR, f"{name} not in place: {HOPELESS[state]} ({plain(device.get('reason'))})")
            if device.get("quality") != "good":
                return Waited(ExitCode.ERROR, f"{name} not in place: its data are {plain(device.get('quality'))} "
                                              f"({plain(device.get('reason'))})")
            deadline = deadline or clock() + float(device.get("travel_limit_s") or 10.0) + MARGIN_S
            if clock() > deadline:
                return Waited(ExitCode.ERROR, f"{name} not in place within its travel time: it is "
                                              f"{plain(device.get('display', state))}")
            sleep(POLL_S)


def _bars(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
                    console=console, transient=False)


def _draw(bars: Progress, status: dict, names: list[str], goal: set[str] | None) -> dict[str, dict]:
    """One bar per device: its state and how far along it is."""
    devices = {d["name"]: d for d in status.get("devices", []) if d.get("name") in names}
    if not bars.task_ids:
        for name in names:
            bars.add_task(plain(name), total=100, where="")
    for task_id, name in zip(bars.task_ids, names, strict=True):
        device = devices.get(name, {})
        aim = goal or {device.get("state")}
        share = open_share(device, aim)
        where = f"{plain(device.get('display', device.get('state', '?')))}"
        if share is not None:
            where += f" {share:.0f} %"
        bars.update(task_id, completed=share if share is not None else 0, where=where)
    return devices
