"""The command registry: who may run what, the rules that refuse a command, and the write to the PLC."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum

import structlog

from controller.auth import Role
from controller.event_store import Caller
from controller.site import Site
from hal.errors import CommsError
from hal.unit import Quality

log = structlog.get_logger("controller.commands")


class ExitCode(IntEnum):
    """barrierctl exit codes, stable for scripts."""

    DONE = 0
    ERROR = 1
    USAGE = 2
    REFUSED = 3
    NOT_AUTHORISED = 4
    UNREACHABLE = 5


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
    """A command that ends without being done; carries its exit code and, for refusals, the rule."""

    def __init__(self, code: ExitCode, message: str, rule: str | None = None):
        self.code = code
        self.rule = rule
        super().__init__(f"refused by rule {rule}: {message}" if rule else message)


def refuse(rule: str, message: str) -> CommandFailed:
    return CommandFailed(ExitCode.REFUSED, message, rule)


Handler = Callable[[Site, dict, Caller], Awaitable[Reply]]

DEVICE_VERBS = {
    "open": Role.OPERATOR,
    "close": Role.OPERATOR,
    "stop": Role.OPERATOR,
    "raise": Role.OPERATOR,
    "lower": Role.OPERATOR,
    "green": Role.OPERATOR,
    "red": Role.OPERATOR,
    "reset": Role.TECHNICIAN,
}


@dataclass
class Registry:
    """Command name -> (least role, handler)."""

    entries: dict[str, tuple[Role, Handler]] = field(default_factory=dict)

    def add(self, name: str, role: Role, handler: Handler) -> None:
        self.entries[name] = (role, handler)

    async def dispatch(self, site: Site, request: dict, caller: Caller) -> Reply:
        """Run one request; every request, allowed or refused, is recorded with its caller."""
        name = request.get("command")
        args = request.get("args") or {}
        if not isinstance(name, str) or name not in self.entries or not isinstance(args, dict):
            reply = Reply(ExitCode.USAGE, f"unknown command {name!r}; known: {', '.join(sorted(self.entries))}")
        else:
            role, handler = self.entries[name]
            if Role[caller.role.upper()] < role:
                reply = Reply(
                    ExitCode.NOT_AUTHORISED,
                    f"{name} needs role {role.label}; {caller.user} (uid {caller.uid}) has {caller.role}",
                )
            else:
                try:
                    reply = await handler(site, {**args, "verb": name}, caller)
                except CommandFailed as exc:
                    reply = Reply(exc.code, str(exc))
        if name not in READ_ONLY:
            site.store.record_command(caller, str(name), args, OUTCOME[reply.code], int(reply.code), reply.message)
            log.info("command", command=name, args=args, uid=caller.uid, user=caller.user, pid=caller.pid,
                     outcome=OUTCOME[reply.code], message=reply.message)
        return reply


READ_ONLY = frozenset({"status", "events"})


async def status(site: Site, args: dict, caller: Caller) -> Reply:
    return Reply(ExitCode.DONE, "ok", site.status())


async def events(site: Site, args: dict, caller: Caller) -> Reply:
    limit = args.get("limit", 50)
    after = args.get("after", 0)
    if not isinstance(limit, int) or not 1 <= limit <= 10_000 or not isinstance(after, int):
        raise CommandFailed(ExitCode.USAGE, "limit must be a whole number 1..10000")
    return Reply(ExitCode.DONE, "ok", {"events": site.store.recent_events(limit, after)})


async def device_command(site: Site, args: dict, caller: Caller) -> Reply:
    """open / close / stop / raise / lower / green / red / reset one device."""
    verb = args["verb"]
    name = args.get("device")
    device = site.devices.get(name) if isinstance(name, str) else None
    if device is None:
        raise CommandFailed(ExitCode.USAGE, f"no device named {name!r}; known: {', '.join(site.devices)}")
    if verb not in device.VERBS:
        raise CommandFailed(
            ExitCode.USAGE, f"{verb} is not a command for {device.name} ({device.cfg.kind}); it takes {', '.join(device.VERBS)}"
        )
    if device.quality is not Quality.GOOD:
        raise refuse("data_not_valid", f"{device.name}: PLC data are {device.quality.value} ({device.quality_reason}); no command written")
    if device.state == "local":
        raise refuse("device_local", f"{device.name} is under local control; no command written")
    if verb == "reset":
        device.clear_latched_fault()
    elif device.state == "fault" and verb in device.OPENING_VERBS:
        raise refuse("device_fault", f"{device.name} has a fault; nothing that opens it is allowed until reset")
    try:
        outcome = await site.buses[device.plc].command(device.plc, device.slot, device.VERBS[verb])
    except CommsError as exc:
        raise CommandFailed(ExitCode.ERROR, f"{device.name}: {exc}") from exc
    if not outcome.acknowledged:
        raise CommandFailed(ExitCode.ERROR, f"{device.name}: {outcome.describe()}")
    if not outcome.accepted:
        raise refuse("plc_rejected", f"{device.name}: the PLC refused {verb}: {outcome.describe()}")
    device.record_intent(verb, caller.user)
    return Reply(ExitCode.DONE, f"{device.name}: {verb} accepted by the PLC (COMMAND_SEQ {outcome.seq})")


def build_registry() -> Registry:
    registry = Registry()
    registry.add("status", Role.VIEWER, status)
    registry.add("events", Role.VIEWER, events)
    for verb, role in DEVICE_VERBS.items():
        registry.add(verb, role, device_command)
    return registry
