"""Load a site TOML file and refuse it whole, naming the file and the key, if anything is wrong (pydantic checks)."""

from __future__ import annotations

import tomllib
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from config.errors import ConfigError
from config.schema import SiteConfig
from hal.kinds import KINDS

# pydantic's words for a dataclass where a site file's reader expects a table's
TABLE_WORDS = {
    "unexpected_keyword_argument": "Extra inputs are not permitted",
    "dataclass_type": "Input should be a valid dictionary (a TOML table)",
}


def load_site(path: Path | str) -> SiteConfig:
    """Parse and validate a site file; raise ConfigError listing every problem found."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [("(file)", f"not UTF-8 text: {exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("(syntax)", str(exc))]) from exc
    except RecursionError as exc:  # arrays or tables nested thousands deep: no site file is
        raise ConfigError(path, [("(syntax)", "values nested too deep to read")]) from exc
    return site_from_toml(raw, path)


def site_from_toml(raw: dict[str, Any], path: Path | str = "(site)") -> SiteConfig:
    """Validate a parsed site file (a dict as tomllib gives it); raise ConfigError listing every problem found."""
    try:
        site = _site_adapter().validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(path, [_problem(err, raw) for err in exc.errors()]) from exc
    problems = cross_reference_problems(site)
    if problems:
        raise ConfigError(path, problems)
    return site


@cache
def _site_adapter() -> TypeAdapter[SiteConfig]:
    return TypeAdapter(SiteConfig)


def _problem(err: Any, raw: dict) -> tuple[str, str]:
    """One pydantic error as (TOML key, reason)."""
    return _key_of(err["loc"], raw), TABLE_WORDS.get(err["type"], err["msg"])


def _key_of(loc: tuple, raw: dict) -> str:
    """A pydantic error location as a TOML key, with the entry's name where it has one."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and item < len(node) else {}
            name = node.get("name") if isinstance(node, dict) else None
            parts[-1] += f"[{item}]" + (f' ("{name}")' if isinstance(name, str) else "")
        else:
            parts.append(str(item))
            node = node.get(item, {}) if isinstance(node, dict) else {}
    return ".".join(parts) or "(top level)"


def _duplicates(names: list[str]) -> list[str]:
    return [name for name, count in Counter(names).items() if count > 1]


def cross_reference_problems(site: SiteConfig) -> list[tuple[str, str]]:
    """Problems between sections: duplicates, dangling references, slot clashes, wrong lane roles."""
    problems: list[tuple[str, str]] = []
    for section, names in (
        ("bus", [b.name for b in site.bus]),
        ("plc", [p.name for p in site.plc]),
        ("device", [d.name for d in site.device]),
        ("lane", [lane.name for lane in site.lane]),
    ):
        problems += [(f'{section}.name ("{n}")', "duplicate name") for n in _duplicates(names)]

    buses = {b.name for b in site.bus}
    plcs = {p.name: p for p in site.plc}
    devices = {d.name: d for d in site.device}
    endpoints = Counter((p.host, p.port) for p in site.plc if p.host is not None)
    for i, plc in enumerate(site.plc):
        key = f'plc[{i}] ("{plc.name}")'
        if plc.bus is not None and plc.bus not in buses:
            problems.append((f"{key}.bus", f'no bus named "{plc.bus}"'))
        if plc.host is not None and endpoints[(plc.host, plc.port)] > 1:
            problems.append((f"{key}.port", f"another PLC already uses {plc.host}:{plc.port}"))
    units = Counter((p.bus, p.unit) for p in site.plc if p.bus is not None)
    for i, plc in enumerate(site.plc):
        if plc.bus is not None and units[(plc.bus, plc.unit)] > 1:
            problems.append((f'plc[{i}] ("{plc.name}").unit', f'unit {plc.unit} used twice on bus "{plc.bus}"'))

    slots = Counter((d.plc, d.slot) for d in site.device)
    for i, dev in enumerate(site.device):
        key = f'device[{i}] ("{dev.name}")'
        if dev.plc not in plcs:
            problems.append((f"{key}.plc", f'no plc named "{dev.plc}"'))
        if slots[(dev.plc, dev.slot)] > 1:
            problems.append((f"{key}.slot", f'slot {dev.slot} of "{dev.plc}" is used by two devices'))
    for i, plc in enumerate(site.plc):
        if not any(d.plc == plc.name for d in site.device):
            problems.append((f'plc[{i}] ("{plc.name}")', "has no devices (a PLC has 1 to 16 slots)"))
    for name in plcs:
        used = sorted({d.slot for d in site.device if d.plc == name})
        if used and used != list(range(len(used))):
            problems.append((f'plc ("{name}")', f"slots must be contiguous from 0, got {used}"))

    in_lanes: Counter[str] = Counter()
    for i, lane in enumerate(site.lane):
        key = f'lane[{i}] ("{lane.name}")'
        if not lane.members():
            problems.append((key, "a lane needs at least one device"))
        for role, name in lane.members().items():
            in_lanes[name] += 1
            if name not in devices:
                problems.append((f"{key}.{role}", f'no device named "{name}"'))
            elif KINDS[devices[name].kind].lane_role != role:
                problems.append((f"{key}.{role}", f'"{name}" is a {devices[name].kind}, not a {role}'))
    problems += [(f'device ("{n}")', "is in more than one lane") for n, c in in_lanes.items() if c > 1]

    for i, lock in enumerate(site.interlock):
        for name in lock.devices:
            if name not in devices:
                problems.append((f"interlock[{i}].devices", f'no device named "{name}"'))
            elif KINDS[devices[name].kind].behaviour == "signal":
                problems.append((f"interlock[{i}].devices", f'"{name}" is a signal; it cannot be open'))
        if len(set(lock.devices)) != len(lock.devices):
            problems.append((f"interlock[{i}].devices", "names the same device twice"))
    if site.centre is not None and site.mqtt is None:
        problems.append(("centre", "the centre's commands come over MQTT: [centre] needs an [mqtt] section"))
    return problems
