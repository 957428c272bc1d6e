"""Breadth-first exploration of every reachable abstract state of the demo site's core, each rule checked."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from config.loader import site_from_toml
from config.schema import SiteConfig
from controller.commands import build_registry
from controller.auth import Caller
from controller.event_store import EventStore
from controller.exit_codes import ExitCode
from controller.site import Site
from hal.profile import Command, SignalCommand, Status
from tests.unit.explorer_plant import LEAF_AT, SIGNAL_AT, Plant, state_key

DEMO_SITE = Path(__file__).resolve().parents[2] / "config" / "sites" / "demo.toml"
CALLERS = {
    "viewer": Caller(uid=1002, gid=1002, pid=41, user="watcher", role="viewer"),
    "operator": Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator"),
    "technician": Caller(uid=1003, gid=1003, pid=43, user="tech", role="technician"),
}
REFUSED_HERE = ExitCode.REFUSED, ExitCode.NOT_AUTHORISED, ExitCode.USAGE
LATCHED_MODES = ("lockdown", "maintenance", "fault")  # lane modes that survive a restart
RETURN_STEPS = 8  # a way back this long costs less than rebuilding the site
POOL_PER_STATE = 8  # sites kept for one state not yet expanded
ACTION_DEADLINE_S = 2.0  # every device answers at once here: an action that takes longer waited for nothing


def demo_config() -> SiteConfig:
    """The demo crossing with no clear time, so every sequence runs to its end within one action."""
    raw = tomllib.loads(DEMO_SITE.read_text())
    for lane in raw["lane"]:
        lane["clear_time_s"] = 0.0
    return site_from_toml(raw)


@dataclass(frozen=True)
class Action:
    """One thing that can happen: a command by a role, a sensor or fault change, comms lost or back, a restart."""

    what: str  # "command", "vehicle", "fault", "comms", "restart"
    target: str = ""
    command: str = ""
    args: tuple[tuple[str, str | None], ...] = ()
    role: str = ""

    def __str__(self) -> str:
        if self.what == "command":
            shown = " ".join(f"{k}={v}" for k, v in self.args if k != "reason")
            return f"{self.role} {self.command} {shown}".strip()
        return f"{self.what} {self.target}".strip()


@dataclass(frozen=True)
class Scope:
    """What the exploration varies: commands to these devices and lanes, sensors and faults on these devices."""

    devices: tuple[str, ...]  # single-device commands, every verb each takes
    lanes: tuple[str, ...]  # lane open / secure, lane lockdown and release, maintenance
    vehicles: tuple[str, ...]  # blockers whose presence loop may report a vehicle
    faults: tuple[str, ...]  # devices that may latch a drive fault (cleared only by RESET)
    plcs: tuple[str, ...]  # PLCs whose comms may be lost and come back
    roles: tuple[str, ...] = tuple(CALLERS)


@dataclass
class Report:
    """What an exploration covered, and every rule it found broken with the way there."""

    states: int = 0
    transitions: int = 0
    steps: int = 0  # transitions taken, with those taken again to bring a site back to a state
    builds: int = 0
    seconds: float = 0.0
    violations: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, what, path from the start)

    def rules_broken(self) -> set[str]:
        return {rule for rule, _, _ in self.violations}


def actions_for(scope: Scope, verbs: dict[str, list[str]]) -> list[Action]:
    """Every command with valid arguments by every role, and every change the plant can make, within `scope`;
    `verbs`: what a person may type for each device, as the site's status lists it."""
    actions = []
    for role in scope.roles:
        for device in scope.devices:
            actions += [Action("command", command=v, args=(("device", device),), role=role) for v in verbs[device]]
        for lane in scope.lanes:
            actions += [Action("command", command=c, args=(("lane", lane),), role=role)
                        for c in ("lane_open", "lane_secure")]
            actions += [Action("command", command=c, args=(("lane", lane), ("reason", "explored")), role=role)
                        for c in ("maintenance_enter", "maintenance_exit")]
        for lane in (None, *scope.lanes):
            actions += [Action("command", command=c, args=(("lane", lane), ("reason", "explored")), role=role)
                        for c in ("lockdown", "lockdown_release")]
    actions += [Action("vehicle", b) for b in scope.vehicles] + [Action("fault", d) for d in scope.faults]
    actions += [Action("comms", p) for p in scope.plcs] + [Action("restart")]
    return actions


class Explorer:
    """Breadth-first over abstract states; a state is explored on a site a path brought there, or on one
    rebuilt from the state as a restart finds it."""

    def __init__(self, cfg: SiteConfig, scope: Scope, *, until: str | None = None, pool_cap: int = 600):
        self.cfg = cfg
        self.scope = scope
        self.actions: list[Action] = []
        self.registry = build_registry()
        self.until = until  # stop once this rule is found broken
        self.pool_cap = pool_cap
        self.pool: dict[tuple, list[tuple[Site, Plant]]] = {}
        self.pooled = 0
        self.queue: deque[tuple] = deque()
        self.expanded: set[tuple] = set()
        self.edges: dict[tuple, dict[tuple, Action]] = {}  # state -> next state -> the first action seen to lead there
        self.redges: dict[tuple, dict[tuple, Action]] = {}  # the same, from the next state back
        self.home_goal: tuple | None = None  # (goal, edges known) the ways home were worked out for
        self.edge_count = 0
        self.home: dict[tuple, tuple[tuple, Action, int]] = {}
        self.parent: dict[tuple, tuple[tuple | None, str]] = {}
        self.report = Report()
        self.loop = asyncio.new_event_loop()

    # ----- sites --------------------------------------------------------------------------------

    def initial(self) -> tuple[Site, Plant]:
        """barrierd's first start: everything secured and answering, nothing latched."""
        status = {d.name: SIGNAL_AT["closed"] if d.kind == "traffic_signal" else LEAF_AT["closed"]
                  for d in self.cfg.device}
        return self.start(EventStore(Path(":memory:")), status, frozenset(), None)

    def rebuild(self, key: tuple) -> tuple[Site, Plant]:
        """A site in state `key`: the latches saved as barrierd saves them, then a start on them."""
        statuses, offline, lanes, site_locked = key
        store = EventStore(Path(":memory:"))
        if site_locked:
            store.save_mode("site", "lockdown", "explorer", "rebuilt")
        for name, mode, own_latch in lanes:
            if mode in LATCHED_MODES:
                store.save_mode(f"lane:{name}", mode, "explorer", "rebuilt")
            if own_latch:
                store.save_mode(f"lockdown:lane:{name}", "lockdown", "explorer", "rebuilt")
        self.report.builds += 1
        return self.start(store, dict(statuses), offline, key, f"{self.path_to(key)} (rebuilt)")

    def start(self, store: EventStore, status: dict[str, int], offline: frozenset[str], expect: tuple | None,
              path: str = "start") -> tuple[Site, Plant]:
        site = Site(self.cfg, store)
        plant = Plant(site, status, offline)
        site.buses = {p.name: plant for p in self.cfg.plc}
        self.run(plant.poll())
        if plant.writes:
            self.violate("restart_writes_nothing", f"a start wrote {plant.writes} before anyone commanded", path)
        if (got := state_key(site, plant)) != expect and expect is not None and not plant.writes:
            self.violate("restart_keeps_modes", f"a start on the latches saved for {expect[2:]} came up {got[2:]} "
                                                f"(or they are no longer saved as `rebuild` saves them)", path)
        return site, plant

    def discard(self, site: Site, *, close_store: bool = True) -> None:
        self.run(site.stop())
        if close_store:
            site.store.close()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    # ----- one step -----------------------------------------------------------------------------

    def violate(self, rule: str, what: str, path: str) -> None:
        self.report.violations.append((rule, what, path))

    def path_to(self, key: tuple | None) -> str:
        steps = []
        while key is not None:
            key, step = self.parent[key]
            steps.append(step)
        return " → ".join(reversed(steps)) or "start"

    def apply(self, site: Site, plant: Plant, action: Action, here: str) -> tuple[Site, Plant]:
        """Do `action` on the site, check every rule it touches, and return the site as it is after it."""
        before = len(plant.writes)
        where = f"{here} → {action}"
        if action.what == "command":
            self.command(site, plant, action, where)
        elif action.what == "restart":
            was = state_key(site, plant)
            self.discard(site, close_store=False)
            site, plant = self.start(site.store, plant.status, frozenset(plant.offline), None, where)
            if (now := state_key(site, plant)) != was:
                self.violate("restart_keeps_modes", f"lanes and latches were {was[2:]}, came back {now[2:]}", where)
            return site, plant
        else:
            if action.what == "vehicle":
                plant.status[action.target] ^= int(Status.VEHICLE_PRESENT)
            elif action.what == "fault":
                plant.status[action.target] |= int(Status.DRIVE_FAULT)
            elif action.what == "comms":
                (plant.offline.discard if action.target in plant.offline else plant.offline.add)(action.target)
            self.run(plant.poll())
            if plant.writes[before:]:
                self.violate("no_write_without_command", f"{action} wrote {plant.writes[before:]}", where)
        for rule, what in plant.violations:
            self.violate(rule, what, where)
        plant.violations.clear()
        for pair in self.cfg.interlock:
            if all(plant.is_open(n) for n in pair.devices):
                self.violate("airlock_never_both_open", f"{pair.devices} both open", where)
        return site, plant

    def check_state(self, key: tuple, where: str) -> None:
        """Rules of a state at rest: a site lockdown holds every lane in lockdown, as does a lane's own latch."""
        _, _, lanes, site_locked = key
        for name, mode, own_latch in lanes:
            if (site_locked or own_latch) and mode != "lockdown":
                self.violate("lockdown_latched", f"{name} is {mode} while its lockdown is latched", where)

    def command(self, site: Site, plant: Plant, action: Action, where: str) -> None:
        before = len(plant.writes)
        request = {"command": action.command, "args": dict(action.args)}
        try:
            reply = self.run(asyncio.wait_for(self.registry.dispatch(site, request, CALLERS[action.role]),
                                              ACTION_DEADLINE_S))
        except TimeoutError:
            self.violate("every_command_ends", f"no reply within {ACTION_DEADLINE_S} s", where)
            return
        self.run(plant.poll(read=False))
        written = plant.writes[before:]
        if reply.code in REFUSED_HERE and "rule plc_rejected" not in reply.message and written:
            self.violate("refused_writes_nothing", f"refused ({reply.message}) yet wrote {written}", where)
        if action.command == "lockdown_release" and written:
            self.violate("release_moves_nothing", f"wrote {written}", where)
        if action.command == "lockdown" and action.role != "viewer":
            self.check_fan_out(site, plant, dict(action.args)["lane"], written, where)

    def check_fan_out(self, site: Site, plant: Plant, lane: str | None, written: list, where: str) -> None:
        """Every reachable device of the scope got its securing command: EFO to blockers, CLOSE or RED to the rest."""
        lanes = {x.name: list(x.members().values()) for x in self.cfg.lane}
        scope = lanes[lane] if lane is not None else [d.name for d in self.cfg.device]
        wanted = {"road_blocker": Command.EFO, "traffic_signal": SignalCommand.RED}
        opened = [(name, code) for name, code in written if plant.opening(name, code)]
        if opened:
            self.violate("no_opening_in_lockdown", f"lockdown of {lane or 'the site'} wrote {opened}", where)
        for name in scope:
            if site.devices[name].plc in plant.offline:
                continue
            code = wanted.get(plant.kinds[name], Command.CLOSE)
            if (name, code) not in written:
                rule = "lockdown_efo_to_blockers" if code == Command.EFO else "lockdown_secures_the_rest"
                self.violate(rule, f"lockdown of {lane or 'the site'} sent no {code!r} to {name}: wrote {written}",
                             where)

    # ----- the search ---------------------------------------------------------------------------

    def take(self, key: tuple) -> tuple[Site, Plant]:
        """A site in state `key`: one a path left there, else one rebuilt."""
        pooled = self.pool.get(key)
        if pooled:
            self.pooled -= 1
            return pooled.pop()
        return self.rebuild(key)

    def keep(self, key: tuple, site: Site, plant: Plant) -> None:
        """Keep a site a path brought to a state not yet expanded; it saves a rebuild there."""
        if key not in self.expanded and self.pooled < self.pool_cap and len(self.pool.get(key, ())) < POOL_PER_STATE:
            self.pool.setdefault(key, []).append((site, plant))
            self.pooled += 1
        else:
            self.discard(site)

    def step(self, key: tuple, site: Site, plant: Plant, action: Action, here: str, replay: bool = False):
        """One transition from `key`: checked, counted, its destination recorded; the site and where it is now."""
        site, plant = self.apply(site, plant, action, here)
        self.report.steps += 1
        self.report.transitions += not replay
        after = state_key(site, plant)
        if after != key:
            if after not in self.edges.setdefault(key, {}):
                self.edges[key][after] = action
                self.redges.setdefault(after, {})[key] = action
                self.edge_count += 1
            if after not in self.parent:
                self.parent[after] = (key, str(action))
                self.check_state(after, f"{here} → {action}")
                self.queue.append(after)
        return site, plant, after

    def homing(self, goal: tuple) -> dict[tuple, tuple[tuple, Action, int]]:
        """For every state with a known way to `goal`: the next state on it, the action, and the steps left."""
        if self.home_goal != (goal, self.edge_count):
            self.home_goal, self.home = (goal, self.edge_count), {}
            frontier = [goal]
            for steps in range(1, RETURN_STEPS + 1):
                following = []
                for state in frontier:
                    for source, action in self.redges.get(state, {}).items():
                        if source not in self.home and source != goal:
                            self.home[source] = (state, action, steps)
                            following.append(source)
                frontier = following
        return self.home

    def back(self, key: tuple, site: Site, plant: Plant, after: tuple) -> tuple[Site, Plant] | None:
        """Bring a site that left `key` back along actions seen to lead there (cheaper than a rebuild); if there is no
        such way, keep the site for where it is, or drop it."""
        home = self.home if self.home_goal and self.home_goal[0] == key and after in self.home else self.homing(key)
        while after in home and after in self.expanded:
            state, action, _ = home[after]
            site, plant, after = self.step(after, site, plant, action, self.path_to(after), replay=True)
            if after == key:
                return site, plant
            if after != state:
                break  # the abstraction hid a difference: this site went elsewhere
        self.keep(after, site, plant)
        return None

    def explore(self) -> Report:
        started = time.perf_counter()
        site, plant = self.initial()
        self.actions = actions_for(self.scope, {d["name"]: d["verbs"] for d in site.status()["devices"]})
        first = state_key(site, plant)
        self.parent[first] = (None, "start")
        self.check_state(first, "start")
        self.keep(first, site, plant)
        self.queue.append(first)
        while self.queue and not (self.until and self.until in self.report.rules_broken()):
            key = self.queue.popleft()
            here = self.path_to(key)
            held = None
            for action in self.actions:
                site, plant = held or self.take(key)
                site, plant, after = self.step(key, site, plant, action, here)
                held = (site, plant) if after == key else self.back(key, site, plant, after)
            self.expanded.add(key)
            for spare, _ in self.pool.pop(key, []):
                self.pooled -= 1
                self.discard(spare)
            if held is not None:
                self.discard(held[0])
        for sites in self.pool.values():
            for site, _ in sites:
                self.discard(site)
        self.loop.close()
        self.report.states = len(self.parent)
        self.report.seconds = time.perf_counter() - started
        return self.report
