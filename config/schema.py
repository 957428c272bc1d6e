"""Site configuration schema: frozen dataclasses whose annotations bound every value (validated in config/loader.py)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Interval, Le, Len, Lt, MaxLen, MinLen

from config.checks import Check, FromArray, Pattern, Section
from hal.kinds import KINDS
from hal.profile import MAX_SLOTS, WATCHDOG_MAX_MS, WATCHDOG_MIN_MS, Kind

NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Pattern(NAME)]

KIND_CODES: dict[str, Kind] = {name: spec.code for name, spec in KINDS.items()}


@dataclass(frozen=True, kw_only=True)
class SiteSection(Section):
    name: Name
    poll_ms: Annotated[int, Interval(ge=10, le=10_000)] = 100
    comms_lost_polls: Annotated[int, Interval(ge=1, le=100)] = 3
    frozen_polls: Annotated[int, Interval(ge=2, le=1000)] = 10


@dataclass(frozen=True, kw_only=True)
class BusSection(Section):
    name: Name
    port: Annotated[str, MinLen(1)]
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_ms: Annotated[int, Interval(ge=10, le=5000)] = 100


def _watchdog_range(value: int) -> int:
    if value != 0 and not WATCHDOG_MIN_MS <= value <= WATCHDOG_MAX_MS:
        raise ValueError(f"watchdog_ms must be 0 (off) or {WATCHDOG_MIN_MS}..{WATCHDOG_MAX_MS}")
    return value


@dataclass(frozen=True, kw_only=True)
class PlcSection(Section):
    name: Name
    host: str | None = None
    port: Annotated[int, Interval(ge=1, le=65535)] | None = None
    bus: str | None = None
    unit: Annotated[int, Interval(ge=1, le=247)] = 1
    timeout_ms: Annotated[int, Interval(ge=10, le=10_000)] = 300
    watchdog_ms: Annotated[int, Check(_watchdog_range)] = 3000

    def __post_init__(self) -> None:
        tcp = self.host is not None or self.port is not None
        if tcp and self.bus is not None:
            raise ValueError("give either host/port (Modbus TCP) or bus (Modbus RTU), not both")
        if not tcp and self.bus is None:
            raise ValueError("needs host and port (Modbus TCP) or bus (Modbus RTU)")
        if tcp and (self.host is None or self.port is None):
            raise ValueError("Modbus TCP needs both host and port")


def _known_kind(value: str) -> str:
    if value not in KINDS:
        raise ValueError(f"unknown kind {value!r}; kinds: {' | '.join(KINDS)}")
    return value


@dataclass(frozen=True, kw_only=True)
class DeviceSection(Section):
    name: Name
    kind: Annotated[str, Check(_known_kind)]
    plc: str
    slot: Annotated[int, Ge(0), Lt(MAX_SLOTS)]
    travel_s: Annotated[float, Gt(0), Le(120)] = 3.0
    travel_factor: Annotated[float, Interval(ge=1.0, le=5.0)] = 1.5
    # travels between services (else its kind's)
    service_cycles: Annotated[int, Interval(ge=1, le=2**32 - 1)] | None = None


LaneRole = Literal["gate", "blocker", "boom", "signal"]
DEFAULT_SECURE_ORDER: tuple[str, ...] = ("signal", "clear", "blocker", "boom", "gate")
DEFAULT_OPEN_ORDER: tuple[str, ...] = ("gate", "boom", "blocker", "signal")


@dataclass(frozen=True, kw_only=True)
class LaneSection(Section):
    name: Name
    gate: str | None = None
    blocker: str | None = None
    boom: str | None = None
    signal: str | None = None
    clear_time_s: Annotated[float, Interval(ge=0, le=60)] = 2.0
    secure_order: Annotated[tuple[Literal["gate", "blocker", "boom", "signal", "clear"], ...], FromArray()] = \
        DEFAULT_SECURE_ORDER
    open_order: Annotated[tuple[LaneRole, ...], FromArray()] = DEFAULT_OPEN_ORDER

    def __post_init__(self) -> None:
        for key, order in (("secure_order", self.secure_order), ("open_order", self.open_order)):
            if len(set(order)) != len(order):
                raise ValueError(f"{key} names a step twice: {list(order)}")
            missing = set(self.members()) - set(order)
            if missing:
                raise ValueError(f"{key} leaves out {sorted(missing)}, which this lane has")

    def members(self) -> dict[str, str]:
        """Role in the lane → device name, for the roles this lane has."""
        roles = {"gate": self.gate, "blocker": self.blocker, "boom": self.boom, "signal": self.signal}
        return {role: name for role, name in roles.items() if name is not None}


@dataclass(frozen=True, kw_only=True)
class InterlockSection(Section):
    kind: Literal["never_both_open"]
    devices: Annotated[list[str], Len(2, 2)]


@dataclass(frozen=True, kw_only=True)
class AccessSection(Section):
    viewer: list[str] = field(default_factory=list)
    operator: list[str] = field(default_factory=list)
    technician: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class MqttSection(Section):
    """Publication of state and events to an MQTT broker (read only; see controller/mqtt_publish.py)."""

    host: Annotated[str, MinLen(1)]
    port: Annotated[int, Interval(ge=1, le=65535)] = 1883
    topic_prefix: Annotated[str, Pattern(r"^[^#+\s/][^#+\s]*[^#+\s/]$")] | None = None
    client_id: Annotated[str, Len(1, 64)] | None = None
    username: str | None = None
    password_file: str | None = None  # the password itself is never in the site file
    tls_ca_file: str | None = None  # TLS to the broker, checked against this CA
    qos: Literal[0, 1, 2] = 1
    keepalive_s: Annotated[int, Interval(ge=2, le=600)] = 30
    refresh_s: Annotated[float, Interval(ge=1.0, le=3600.0)] = 10.0
    connect_timeout_s: Annotated[float, Interval(ge=0.5, le=60.0)] = 5.0


CENTRE_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ED25519_PUBLIC_KEY_BYTES = 32


def _public_keys(keys: dict[str, str]) -> dict[str, str]:
    for key_id, text in keys.items():
        if not CENTRE_KEY_ID.match(key_id):
            raise ValueError(f"key id {key_id[:70]!r} must be letters, digits, '_', '.', '-' (1..64)")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError(f"key {key_id}: not base64 (`barrier-centre keygen` prints the line)") from None
        if len(raw) != ED25519_PUBLIC_KEY_BYTES:
            raise ValueError(f"key {key_id}: {len(raw)} bytes; an Ed25519 public key is "
                             f"{ED25519_PUBLIC_KEY_BYTES} (`barrier-centre keygen` prints the line)")
    return keys


@dataclass(frozen=True, kw_only=True)
class CentreSection(Section):
    """Group lockdown from the command centre over MQTT (controller/centre_lockdown.py): off unless opted in."""

    lockdown: bool = False  # act on a signed lockdown from the centre; false: every one is refused and recorded
    # KEY_ID -> base64 of the raw 32-byte Ed25519 public key
    keys: Annotated[dict[str, str], Check(_public_keys)] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lockdown and not self.keys:
            raise ValueError("lockdown = true needs at least one key in [centre.keys]")


def _loopback_unless_tls(host: str, earlier: dict) -> str:
    if not is_loopback(host) and not (earlier.get("tls_cert_file") and earlier.get("tls_key_file")):
        raise ValueError("without TLS the panel is served on a loopback address only (127.0.0.1, ::1); "
                         "another address needs tls_cert_file and tls_key_file")
    return host


@dataclass(frozen=True, kw_only=True)
class PanelSection(Section):
    """The guard's panel for a browser (controller/panel.py): loopback unless given TLS files."""

    tls_cert_file: Annotated[str, MinLen(1)] | None = None  # PEM; with tls_key_file, served over HTTPS
    tls_key_file: Annotated[str, MinLen(1)] | None = None
    host: Annotated[str, Check(_loopback_unless_tls, earlier=True)] = "127.0.0.1"
    port: Annotated[int, Interval(ge=1, le=65535)] = 8080
    # other names browsers reach it by (Host, Origin)
    server_names: Annotated[list[str], MaxLen(16)] = field(default_factory=list)
    idle_timeout_s: Annotated[int, Interval(ge=2, le=86_400)] = 600  # a session with no command this long is ended
    # the PAM service checking passwords: deploy/pam.d/barrier-panel, installed in /etc/pam.d
    pam_service: Annotated[str, Pattern(r"^[a-z0-9][a-z0-9_.-]{0,63}$")] = "barrier-panel"

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


def _service_per_leaf_kind(value: dict[str, int]) -> dict[str, int]:
    for kind, cycles in value.items():
        if kind not in KINDS or KINDS[kind].behaviour != "leaf":
            travelling = " | ".join(k for k, spec in KINDS.items() if spec.behaviour == "leaf")
            raise ValueError(f"{kind!r} is not a kind that travels; kinds: {travelling}")
        if not 1 <= cycles < 2**32:
            raise ValueError(f"service_cycles of {kind} must be 1..{2**32 - 1}, got {cycles}")
    return value


@dataclass(frozen=True, kw_only=True)
class ConditionSection(Section):
    """Condition monitoring (controller/condition.py): timing limits, drift, service intervals, EFO readiness."""

    efo_limit_s: Annotated[float, Gt(0), Le(30)] = 2.5  # an EFO raise slower than this is a breach
    travel_rows_per_device: Annotated[int, Interval(ge=100, le=1_000_000)] = 5000  # travels kept per device
    travel_tolerance: Annotated[float, Interval(ge=0, le=5)] = 0.25  # an ordinary travel over travel_s × (1 + this)
    baseline_travels: Annotated[int, Interval(ge=3, le=1000)] = 20  # the baseline is the median of the first N
    recent_travels: Annotated[int, Interval(ge=3, le=1000)] = 10  # drift compares the median of the last M with it
    travel_drift: Annotated[float, Gt(0), Le(5)] = 0.10  # warn when the recent median is this much slower
    analog_drift: Annotated[float, Gt(0), Le(1)] = 0.20  # motor current up / blocker pressure down by this much
    # kind -> travels between services
    service_cycles: Annotated[dict[str, int], Check(_service_per_leaf_kind)] = field(default_factory=dict)
    accumulator_nominal_bar: Annotated[float, Gt(0), Le(1000)] = 140.0  # idle pressure of a ready blocker
    accumulator_min_bar: Annotated[float, Gt(0), Le(1000)] = 120.0  # below it, EFO is not ready
    accumulator_max_decay_bar_per_min: Annotated[float, Gt(0), Le(1000)] = 2.0  # idle loss beyond it: degraded
    oil_cold_limit_c: Annotated[float, Interval(ge=-60, le=60)] = -10.0  # colder oil: EFO degraded
    refuse_open_in_cold: bool = False  # refuse opening a lane while a blocker's oil is below the cold limit

    def __post_init__(self) -> None:
        if self.accumulator_min_bar >= self.accumulator_nominal_bar:
            raise ValueError("accumulator_min_bar must be below accumulator_nominal_bar")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class SiteConfig(Section):
    """A whole site: what barrierd supervises and what sim-plc simulates."""

    site: SiteSection
    bus: list[BusSection] = field(default_factory=list)
    plc: Annotated[list[PlcSection], MinLen(1)]
    device: Annotated[list[DeviceSection], MinLen(1)]
    lane: list[LaneSection] = field(default_factory=list)
    interlock: list[InterlockSection] = field(default_factory=list)
    access: AccessSection = field(default_factory=AccessSection)
    mqtt: MqttSection | None = None
    panel: PanelSection | None = None
    centre: CentreSection | None = None
    condition: ConditionSection = field(default_factory=ConditionSection)

    def service_cycles(self, device: DeviceSection) -> int | None:
        """Travels between services of one device: its own setting, else its kind's, else none."""
        return device.service_cycles or self.condition.service_cycles.get(device.kind)

    def plc_named(self, name: str) -> PlcSection:
        return next(p for p in self.plc if p.name == name)

    def devices_of(self, plc_name: str) -> list[DeviceSection]:
        """The devices on one PLC, in slot order."""
        return sorted((d for d in self.device if d.plc == plc_name), key=lambda d: d.slot)

    def slot_kinds(self, plc_name: str) -> list[Kind]:
        """KIND codes the PLC must report, slot 0 upward (slots must be contiguous)."""
        return [KIND_CODES[d.kind] for d in self.devices_of(plc_name)]
