"""The command registry: who may run what, the durable record before a command acts, and thin handlers
that hand each command to the core (actions, lanes, lockdown) and shape its reply."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from controller.auth import Role
from hal.kinds import ALL_VERBS
from controller.auth import Caller
from controller.exit_codes import ExitCode
from controller.actions import ActionFailed, command_device
from controller.condition import NotMonitored
from controller.interlocks import Refused
from controller.lanes import SequenceFailed
from controller.site import Site
from controller.storage import StorageFailed
from controller.states import LaneMode

log = structlog.get_logger("controller.commands")


OUTCOME = {
    ExitCode.DONE: "done",
    ExitCode.ERROR: "error",
    ExitCode.USAGE: "usage",
    ExitCode.REFUSED: "refused",
    ExitCode.NOT_AUTHORISED: "not_authorised",
    ExitCode.UNREACHABLE: "unreachable",
}


@dataclass
class Reply:
    code: ExitCode
    message: str
    data: dict | list | None = None

    def as_dict(self) -> dict:
        return {"exit": int(self.code), "outcome": OUTCOME[self.code], "message": self.message, "data": self.data}


class CommandFailed(Exception):
    """A request that cannot be carried out as asked: usage or authorisation, with its exit code."""

    def __init__(self, code: ExitCode, message: str):
        self.code = code
        super().__init__(message)


Handler = Callable[[Site, dict, Caller], Awaitable[Reply]]

# What a person may type for a device, from the kinds' verbs; a reset is a technician's.
DEVICE_VERBS = {verb: Role.TECHNICIAN if verb == "reset" else Role.OPERATOR for verb in ALL_VERBS}


@dataclass
class Registry:
    """Command name -> (least role, handler)."""

    entries: dict[str, tuple[Role, Handler]] = field(default_factory=dict)

    def add(self, name: str, role: Role, handler: Handler) -> None:
        self.entries[name] = (role, handler)

    async def dispatch(self, site: Site, request: dict, caller: Caller) -> Reply:
        """Run one request. Every request, allowed or refused, is recorded with its caller; one that acts is
        recorded (durably) before it acts, or it does not act — except securing commands, which always go
        through and are written to the store once it takes writes again."""
        name = request.get("command")
        args = request.get("args") or {}
        known = isinstance(name, str) and name in self.entries
        if not known or not isinstance(args, dict):
            reply = Reply(ExitCode.USAGE, f"unknown command {_shown(name)}; known: {', '.join(sorted(self.entries))}")
            name, args = _shown(name), {"not_stored": f"{len(json.dumps(args, default=str))} bytes of arguments"}
        elif (bad := _not_unicode(args)) is not None:
            reply = Reply(ExitCode.USAGE, f"{bad} is not valid Unicode (UTF-8); nothing done")
            args = {"not_stored": "arguments that are not valid Unicode"}
        else:
            reply = await self._authorised(site, name, args, caller)
        if name not in READ_ONLY:
            accepted = reply.code is ExitCode.DONE and name in DEVICE_VERBS  # the PLC took it; not yet in place
            command_id = site.store.record_command(caller, str(name), args, OUTCOME[reply.code], int(reply.code),
                                                   reply.message, said="accepted by the PLC" if accepted else None)
            log.info("command", command=name, args=args, uid=caller.uid, user=caller.user, pid=caller.pid,
                     outcome=OUTCOME[reply.code], message=reply.message)
            if command_id is None:
                reply.message += f" [not recorded yet: {site.store.storage.problem}; kept until the store takes writes]"
        return reply

    async def _authorised(self, site: Site, name: str, args: dict, caller: Caller) -> Reply:
        role, handler = self.entries[name]
        if caller.role < role:
            return Reply(ExitCode.NOT_AUTHORISED,
                         f"{name} needs role {role.label}; {caller.user} (uid {caller.uid}) has {caller.role.label}")
        if name not in READ_ONLY:
            try:
                site.store.record_request(caller, name, args, required=name not in SECURING)
            except StorageFailed as exc:
                return Reply(ExitCode.REFUSED,
                             f"refused by rule storage_unavailable: {name} cannot be recorded ({exc}); nothing done. "
                             f"Securing commands ({', '.join(sorted(SECURING))}) still go through")
        try:
            return await handler(site, {**args, "verb": name}, caller)
        except CommandFailed as exc:
            return Reply(exc.code, str(exc))
        except Refused as exc:
            return Reply(ExitCode.REFUSED, str(exc))
        except (ActionFailed, SequenceFailed) as exc:
            return Reply(ExitCode.ERROR, str(exc))


# Commands that only make the site safer (or halt motion): carried out even when they cannot be recorded first.
SECURING = frozenset({"close", "raise", "red", "stop", "lane_secure", "lockdown"})
MAX_SHOWN_NAME = 64


def _shown(name: object) -> str:
    """An unknown command's name as recorded and echoed: its repr, cut short."""
    text = repr(name)
    return text if len(text) <= MAX_SHOWN_NAME else text[:MAX_SHOWN_NAME] + "…"


def _not_unicode(value: object, where: str = "args") -> str | None:
    """Where a text in the request is not valid Unicode (a lone surrogate), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
    elif isinstance(value, dict):
        for key, item in value.items():
            if (bad := _not_unicode(key, f"{where} key")) or (bad := _not_unicode(item, f"{where}.{key}")):
                return bad
    elif isinstance(value, list):
        for item in value:
            if bad := _not_unicode(item, where):
                return bad
    return None


READ_ONLY = frozenset({"status", "events", "alarms", "audit_verify", "health"})


async def status(site: Site, args: dict, caller: Caller) -> Reply:
    return Reply(ExitCode.DONE, "ok", site.status())


async def events(site: Site, args: dict, caller: Caller) -> Reply:
    limit = args.get("limit", 50)
    after = args.get("after", 0)
    if not _whole(limit) or not 1 <= limit <= 10_000 or not _whole(after) or not 0 <= after < 2**63:
        raise CommandFailed(ExitCode.USAGE, "limit must be a whole number 1..10000, after an event id (0 or more)")
    return Reply(ExitCode.DONE, "ok", {"events": site.store.recent_events(limit, after)})


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def audit_verify(site: Site, args: dict, caller: Caller) -> Reply:
    """Check the seal of every event and command row (in a thread: the bus tasks keep running)."""
    store = site.store
    try:
        reports = store.verify_audit() if store.in_memory else await asyncio.to_thread(store.verify_audit)
    except StorageFailed as exc:
        return Reply(ExitCode.ERROR, f"audit trail cannot be read: {exc}")
    data = {"tables": [dataclasses.asdict(r) | {"intact": r.intact} for r in reports]}
    text = "; ".join(r.describe() for r in reports)
    if all(r.intact for r in reports):
        return Reply(ExitCode.DONE, f"audit trail intact: {text}", data)
    found = tuple((r.table, r.broken_at) for r in reports if not r.intact)
    if found != site.audit_break_recorded:  # recorded once per finding, not once per check
        site.audit_break_recorded = found
        site.store.record_event("audit", "site", f"audit trail broken: {text}", checked_by=caller.user)
        log.error("audit_trail_broken", detail=text, checked_by=caller.user)
    return Reply(ExitCode.ERROR, f"audit trail BROKEN: {text}", data)


async def device_command(site: Site, args: dict, caller: Caller) -> Reply:
    """open / close / stop / raise / lower / green / red / reset one device."""
    verb = args["verb"]
    device = _device(site, args.get("device"))
    if verb not in device.VERBS or verb == "efo":
        takes = ", ".join(v for v in device.VERBS if v != "efo")
        raise CommandFailed(ExitCode.USAGE, f"{verb} is not a command for {device.name} ({device.cfg.kind}); it takes {takes}")
    lane = site.lane_of(device.name)
    if lane is not None and lane.mode == LaneMode.MAINTENANCE and caller.role < Role.TECHNICIAN:
        raise CommandFailed(ExitCode.NOT_AUTHORISED,
                            f"lane {lane.name} is in maintenance: its devices are driven by a technician")
    return Reply(ExitCode.DONE, await command_device(site, device, verb, caller.user))


async def lane_command(site: Site, args: dict, caller: Caller) -> Reply:
    """lane open / lane secure: run the lane's sequence and answer when it is confirmed."""
    lane = _lane(site, args.get("lane"))
    if (latch := site.lockdown.latch) is not None:
        raise Refused("lockdown", f"the site is in lockdown ({latch.reason}); no lane sequence")
    if site.lockdown.locked(lane):  # latched, its mode maybe not yet shown
        raise Refused("lockdown", f"lane {lane.name} is in lockdown; no lane sequence")
    run = lane.run_open if args["verb"] == "lane_open" else lane.run_secure
    try:
        return Reply(ExitCode.DONE, await run(caller.user))
    except SequenceFailed as exc:  # refused by a rule before anything was written: 3; else an error: 1
        code = ExitCode.REFUSED if isinstance(exc.__cause__, Refused) and not exc.wrote else ExitCode.ERROR
        return Reply(code, f"lane {lane.name} is in {lane.mode}: {exc}")


async def lockdown(site: Site, args: dict, caller: Caller) -> Reply:
    """Latch lockdown on a lane or the whole site, then secure every device of it at once."""
    reason = _reason(args)
    lane = _lane(site, args["lane"]) if args.get("lane") is not None else None
    scope, result = await site.lockdown.engage(caller.user, reason, lane)
    code = ExitCode.DONE if result.all_secured else ExitCode.ERROR
    return Reply(code, result.describe(scope), {"secured_at": result.secured_at, "failed": result.failed})


async def lockdown_release(site: Site, args: dict, caller: Caller) -> Reply:
    """End a lockdown; nothing moves."""
    reason = _reason(args)
    lane = _lane(site, args["lane"]) if args.get("lane") is not None else None
    return Reply(ExitCode.DONE, await site.lockdown.release(caller.user, reason, lane))


async def maintenance(site: Site, args: dict, caller: Caller) -> Reply:
    """maintenance enter / exit LANE: sequencing off, devices driven singly; exit checks every device."""
    lane = _lane(site, args.get("lane"))
    reason = _reason(args)
    if args["verb"] == "maintenance_enter":
        if site.locked(lane.devices[0].name):
            raise Refused("lockdown", f"lane {lane.name} is in lockdown; release it first")
        if lane.mode == LaneMode.MAINTENANCE:
            raise Refused("already_in_maintenance", f"lane {lane.name} is already in maintenance")
        try:  # not a securing latch: shown only once it is on disk
            site.store.save_mode(f"lane:{lane.name}", "maintenance", caller.user, reason, required=True)
        except StorageFailed as exc:
            raise Refused("storage_unavailable", f"maintenance of lane {lane.name} cannot be persisted ({exc})") from exc
        lane.cancel_sequence()
        await lane.enter_maintenance(by=caller.user, reason=reason)
    else:
        if lane.mode != LaneMode.MAINTENANCE:
            raise Refused("not_in_maintenance", f"lane {lane.name} is {lane.mode}, not in maintenance")
        await lane.settle(by=caller.user, reason=reason)
    return Reply(ExitCode.DONE, f"lane {lane.name} is {lane.mode}")


async def alarms(site: Site, args: dict, caller: Caller) -> Reply:
    return Reply(ExitCode.DONE, "ok", {"alarms": site.alarms.listing()})


async def ack(site: Site, args: dict, caller: Caller) -> Reply:
    alarm_id = args.get("alarm")
    if not _whole(alarm_id) or not 0 < alarm_id < 2**63:
        raise CommandFailed(ExitCode.USAGE, "ack takes an alarm number (see barrierctl alarms)")
    alarm = site.alarms.ack(alarm_id, caller.user)
    if alarm is None:
        raise CommandFailed(ExitCode.USAGE, f"no alarm {alarm_id} on the list")
    state = "active" if alarm.active else "cleared"
    return Reply(ExitCode.DONE, f"alarm {alarm.id} {alarm.code} {alarm.subject} acknowledged by {caller.user}; {state}")


async def health(site: Site, args: dict, caller: Caller) -> Reply:
    """Per device (or only args["device"]): recent travel times, baselines, limits, cycles, service due, EFO
    readiness."""
    if args.get("device") is None:
        return Reply(ExitCode.DONE, "ok", site.condition.health())
    device = _device(site, args["device"])
    try:
        watched = site.condition.of(device.name)
    except NotMonitored as exc:
        raise Refused(exc.rule, str(exc)) from exc
    return Reply(ExitCode.DONE, "ok", {"devices": [watched.health()]})


async def condition_mark(site: Site, args: dict, caller: Caller) -> Reply:
    """baseline reset DEVICE / service DEVICE, with a reason: recorded, and the warnings they end cleared."""
    device = _device(site, args.get("device"))
    reason = _reason(args)
    try:
        watched = site.condition.of(device.name)
        if args["verb"] == "baseline_reset":
            mark = watched.reset_baseline(caller.user, reason)
            return Reply(ExitCode.DONE, f"{device.name}: baseline reset by {caller.user}; the next "
                                        f"{site.cfg.condition.baseline_travels} travels each way make the new one",
                         mark.as_dict())
        mark = watched.record_service(caller.user, reason)
    except NotMonitored as exc:
        raise Refused(exc.rule, str(exc)) from exc
    return Reply(ExitCode.DONE, f"{device.name}: service recorded by {caller.user} at {mark.cycle_count} cycles",
                 mark.as_dict())


def _device(site: Site, name):
    device = site.devices.get(name) if isinstance(name, str) else None
    if device is None:
        raise CommandFailed(ExitCode.USAGE, f"no device named {_shown(name)}{_did_you_mean(name, site.devices)}")
    return device


def _lane(site: Site, name):
    lane = site.lanes.get(name) if isinstance(name, str) else None
    if lane is None:
        raise CommandFailed(ExitCode.USAGE, f"no lane named {_shown(name)}{_did_you_mean(name, site.lanes)}")
    return lane


def _did_you_mean(name: object, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6) if isinstance(name, str) else []
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else f"; known: {', '.join(known)}"


def _reason(args: dict) -> str:
    reason = args.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise CommandFailed(ExitCode.USAGE, "a reason is required (--reason TEXT)")
    return reason.strip()


def build_registry() -> Registry:
    registry = Registry()
    registry.add("status", Role.VIEWER, status)
    registry.add("events", Role.VIEWER, events)
    registry.add("audit_verify", Role.VIEWER, audit_verify)
    for verb, role in DEVICE_VERBS.items():
        registry.add(verb, role, device_command)
    registry.add("alarms", Role.VIEWER, alarms)
    registry.add("ack", Role.OPERATOR, ack)
    registry.add("lane_open", Role.OPERATOR, lane_command)
    registry.add("lane_secure", Role.OPERATOR, lane_command)
    registry.add("lockdown", Role.OPERATOR, lockdown)
    registry.add("lockdown_release", Role.TECHNICIAN, lockdown_release)
    registry.add("maintenance_enter", Role.TECHNICIAN, maintenance)
    registry.add("maintenance_exit", Role.TECHNICIAN, maintenance)
    registry.add("health", Role.VIEWER, health)
    registry.add("baseline_reset", Role.TECHNICIAN, condition_mark)
    registry.add("service", Role.TECHNICIAN, condition_mark)
    return registry
