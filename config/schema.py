"""Site configuration schema: pydantic models that refuse unknown keys, bad ranges and broken references."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hal.kinds import KINDS
from hal.profile import MAX_SLOTS, WATCHDOG_MAX_MS, WATCHDOG_MIN_MS, Kind

NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"

KIND_CODES: dict[str, Kind] = {name: spec.code for name, spec in KINDS.items()}


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SiteSection(Strict):
    name: str = Field(pattern=NAME)
    poll_ms: int = Field(default=100, ge=10, le=10_000)
    comms_lost_polls: int = Field(default=3, ge=1, le=100)
    frozen_polls: int = Field(default=10, ge=2, le=1000)


class BusSection(Strict):
    name: str = Field(pattern=NAME)
    port: str = Field(min_length=1)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_ms: int = Field(default=100, ge=10, le=5000)


class PlcSection(Strict):
    name: str = Field(pattern=NAME)
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    bus: str | None = None
    unit: int = Field(default=1, ge=1, le=247)
    timeout_ms: int = Field(default=300, ge=10, le=10_000)
    watchdog_ms: int = Field(default=3000)

    @model_validator(mode="after")
    def _one_transport(self) -> PlcSection:
        tcp = self.host is not None or self.port is not None
        if tcp and self.bus is not None:
            raise ValueError("give either host/port (Modbus TCP) or bus (Modbus RTU), not both")
        if not tcp and self.bus is None:
            raise ValueError("needs host and port (Modbus TCP) or bus (Modbus RTU)")
        if tcp and (self.host is None or self.port is None):
            raise ValueError("Modbus TCP needs both host and port")
        return self

    @field_validator("watchdog_ms")
    @classmethod
    def _watchdog_range(cls, value: int) -> int:
        if value != 0 and not WATCHDOG_MIN_MS <= value <= WATCHDOG_MAX_MS:
            raise ValueError(f"watchdog_ms must be 0 (off) or {WATCHDOG_MIN_MS}..{WATCHDOG_MAX_MS}")
        return value


class DeviceSection(Strict):
    name: str = Field(pattern=NAME)
    kind: str
    plc: str
    slot: int = Field(ge=0, lt=MAX_SLOTS)
    travel_s: float = Field(default=3.0, gt=0, le=120)
    travel_factor: float = Field(default=1.5, ge=1.0, le=5.0)
    service_cycles: int | None = Field(default=None, ge=1, le=2**32 - 1)  # travels between services (or its kind's)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown kind {value!r}; kinds: {' | '.join(KINDS)}")
        return value


LaneRole = Literal["gate", "blocker", "boom", "signal"]
DEFAULT_SECURE_ORDER: tuple[str, ...] = ("signal", "clear", "blocker", "boom", "gate")
DEFAULT_OPEN_ORDER: tuple[str, ...] = ("gate", "boom", "blocker", "signal")


class LaneSection(Strict):
    name: str = Field(pattern=NAME)
    gate: str | None = None
    blocker: str | None = None
    boom: str | None = None
    signal: str | None = None
    clear_time_s: float = Field(default=2.0, ge=0, le=60)
    secure_order: tuple[Literal["gate", "blocker", "boom", "signal", "clear"], ...] = DEFAULT_SECURE_ORDER
    open_order: tuple[LaneRole, ...] = DEFAULT_OPEN_ORDER

    @field_validator("secure_order", "open_order", mode="before")
    @classmethod
    def _list_to_tuple(cls, value):
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _orders_name_each_role_once(self) -> LaneSection:
        for key, order in (("secure_order", self.secure_order), ("open_order", self.open_order)):
            if len(set(order)) != len(order):
                raise ValueError(f"{key} names a step twice: {list(order)}")
            missing = set(self.members()) - set(order)
            if missing:
                raise ValueError(f"{key} leaves out {sorted(missing)}, which this lane has")
        return self

    def members(self) -> dict[str, str]:
        """Role in the lane → device name, for the roles this lane has."""
        roles = {"gate": self.gate, "blocker": self.blocker, "boom": self.boom, "signal": self.signal}
        return {role: name for role, name in roles.items() if name is not None}


class InterlockSection(Strict):
    kind: Literal["never_both_open"]
    devices: list[str] = Field(min_length=2, max_length=2)


class AccessSection(Strict):
    viewer: list[str] = []
    operator: list[str] = []
    technician: list[str] = []


class MqttSection(Strict):
    """Publication of state and events to an MQTT broker (read only; see controller/mqtt_publish.py)."""

    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str | None = Field(default=None, pattern=r"^[^#+\s/][^#+\s]*[^#+\s/]$")
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    username: str | None = None
    password_file: str | None = None  # the password itself is never in the site file
    tls_ca_file: str | None = None  # TLS to the broker, checked against this CA
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(default=30, ge=2, le=600)
    refresh_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    connect_timeout_s: float = Field(default=5.0, ge=0.5, le=60.0)


CENTRE_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ED25519_PUBLIC_KEY_BYTES = 32


class CentreSection(Strict):
    """Group lockdown from the command centre over MQTT (controller/centre_lockdown.py): off unless opted in."""

    lockdown: bool = False  # act on a signed lockdown from the centre; false: every one is refused and recorded
    keys: dict[str, str] = Field(default_factory=dict)  # KEY_ID -> base64 of the raw 32-byte Ed25519 public key

    @field_validator("keys")
    @classmethod
    def _public_keys(cls, keys: dict[str, str]) -> dict[str, str]:
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

    @model_validator(mode="after")
    def _keys_when_opted_in(self) -> CentreSection:
        if self.lockdown and not self.keys:
            raise ValueError("lockdown = true needs at least one key in [centre.keys]")
        return self


class PanelSection(Strict):
    """The guard's panel for a browser (controller/panel.py): loopback unless given TLS files."""

    tls_cert_file: str | None = Field(default=None, min_length=1)  # PEM; with tls_key_file, served over HTTPS
    tls_key_file: str | None = Field(default=None, min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    server_names: list[str] = Field(default=[], max_length=16)  # other names browsers reach it by (Host, Origin)
    idle_timeout_s: int = Field(default=600, ge=2, le=86_400)  # a session with no command this long is ended
    # the PAM service checking passwords: deploy/pam.d/barrier-panel, installed in /etc/pam.d
    pam_service: str = Field(default="barrier-panel", pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")

    @field_validator("host")
    @classmethod
    def _loopback_unless_tls(cls, host: str, info: ValidationInfo) -> str:
        if is_loopback(host):
            return host
        if not (info.data.get("tls_cert_file") and info.data.get("tls_key_file")):
            raise ValueError("without TLS the panel is served on a loopback address only (127.0.0.1, ::1); "
                             "another address needs tls_cert_file and tls_key_file")
        return host

    @model_validator(mode="after")
    def _tls_files_in_pairs(self) -> PanelSection:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class ConditionSection(Strict):
    """Condition monitoring (controller/condition.py): timing limits, drift, service intervals, EFO readiness."""

    efo_limit_s: float = Field(default=2.5, gt=0, le=30)  # an EFO raise slower than this is a breach
    travel_rows_per_device: int = Field(default=5000, ge=100, le=1_000_000)  # travels kept per device
    travel_tolerance: float = Field(default=0.25, ge=0, le=5)  # an ordinary travel over travel_s × (1 + this)
    baseline_travels: int = Field(default=20, ge=3, le=1000)  # the baseline is the median of the first N
    recent_travels: int = Field(default=10, ge=3, le=1000)  # drift compares the median of the last M with it
    travel_drift: float = Field(default=0.10, gt=0, le=5)  # warn when the recent median is this much slower
    analog_drift: float = Field(default=0.20, gt=0, le=1)  # motor current up / blocker pressure down by this much
    service_cycles: dict[str, int] = Field(default_factory=dict)  # kind -> travels between services
    accumulator_nominal_bar: float = Field(default=140.0, gt=0, le=1000)  # idle pressure of a ready blocker
    accumulator_min_bar: float = Field(default=120.0, gt=0, le=1000)  # below it, EFO is not ready
    accumulator_max_decay_bar_per_min: float = Field(default=2.0, gt=0, le=1000)  # idle loss beyond it: degraded
    oil_cold_limit_c: float = Field(default=-10.0, ge=-60, le=60)  # colder oil: EFO degraded
    refuse_open_in_cold: bool = False  # refuse opening a lane while a blocker's oil is below the cold limit

    @field_validator("service_cycles")
    @classmethod
    def _service_per_leaf_kind(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, cycles in value.items():
            if kind not in KINDS or KINDS[kind].behaviour != "leaf":
                travelling = " | ".join(k for k, spec in KINDS.items() if spec.behaviour == "leaf")
                raise ValueError(f"{kind!r} is not a kind that travels; kinds: {travelling}")
            if not 1 <= cycles < 2**32:
                raise ValueError(f"service_cycles of {kind} must be 1..{2**32 - 1}, got {cycles}")
        return value

    @model_validator(mode="after")
    def _minimum_below_nominal(self) -> ConditionSection:
        if self.accumulator_min_bar >= self.accumulator_nominal_bar:
            raise ValueError("accumulator_min_bar must be below accumulator_nominal_bar")
        return self


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SiteConfig(Strict):
    """A whole site: what barrierd supervises and what sim-plc simulates."""

    site: SiteSection
    bus: list[BusSection] = []
    plc: list[PlcSection] = Field(min_length=1)
    device: list[DeviceSection] = Field(min_length=1)
    lane: list[LaneSection] = []
    interlock: list[InterlockSection] = []
    access: AccessSection = AccessSection()
    mqtt: MqttSection | None = None
    panel: PanelSection | None = None
    centre: CentreSection | None = None
    condition: ConditionSection = ConditionSection()

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
