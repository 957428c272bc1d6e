"""The signed group-lockdown protocol between the command centre and a site: payload, envelope, checks, reply."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LOCKDOWN_TOPIC = "centre/lockdown"  # under the site's prefix: the centre publishes here (QoS 1, not retained)
REPLY_TOPIC = "centre/lockdown/reply"  # the site answers here (QoS 1, not retained)
MAX_WINDOW_S = 60.0  # expires_at - issued_at at most
CLOCK_SKEW_S = 5.0  # a site accepts a command issued this far in its future, or expired this long ago
MAX_ENVELOPE_BYTES = 4096
MAX_REASON = 500
MAX_OPERATOR = 64
ALL_SITES = "*"
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COMMAND_ID = re.compile(r"^[0-9a-f]{32}$")
PUBLIC_KEY_BYTES = 32
PAYLOAD_FIELDS = frozenset({"type", "id", "sites", "reason", "operator", "issued_at", "expires_at"})
ENVELOPE_FIELDS = frozenset({"payload", "key", "sig"})


@dataclass(frozen=True)
class Lockdown:
    """A verified group lockdown command."""

    id: str
    sites: tuple[str, ...]
    reason: str
    operator: str
    issued_at: float
    expires_at: float
    key_id: str


@dataclass(frozen=True)
class Refusal:
    """Why an envelope is not acted on, in words; the key and id it claimed when they could be read."""

    reason: str
    key_id: str | None = None
    id: str | None = None


def canonical(payload: Mapping[str, object]) -> bytes:
    """The exact bytes that are signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def new_payload(sites: list[str], reason: str, operator: str, now: float, ttl_s: float = 30.0) -> dict:
    """A lockdown payload for `sites` (or ["*"]), valid from `now` for `ttl_s` seconds."""
    payload = {"type": "lockdown", "id": uuid.uuid4().hex, "sites": list(sites), "reason": reason,
               "operator": operator, "issued_at": float(now), "expires_at": float(now) + ttl_s}
    if (problem := payload_problem(payload)) is not None:
        raise ValueError(problem)
    return payload


def sign(private_key: Ed25519PrivateKey, key_id: str, payload: Mapping[str, object]) -> bytes:
    """The envelope (UTF-8 JSON) carrying `payload` signed by `private_key`, named `key_id`."""
    body = canonical(payload)
    envelope = {"payload": _b64(body), "key": key_id, "sig": _b64(private_key.sign(body))}
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def verify(envelope: bytes, keys: Mapping[str, Ed25519PublicKey], now: float, site_name: str,
           seen: Container[str]) -> Lockdown | Refusal:
    """The command if this envelope is one this site must act on now, else the reason it is refused.
    Never raises, whatever the bytes."""
    if not isinstance(envelope, (bytes, bytearray)):
        return Refusal("malformed: the envelope is not bytes")
    if len(envelope) > MAX_ENVELOPE_BYTES:
        return Refusal(f"malformed: envelope of {len(envelope)} bytes, more than {MAX_ENVELOPE_BYTES}")
    outer = _json_object(bytes(envelope), "envelope")
    if isinstance(outer, Refusal):
        return outer
    if set(outer) != ENVELOPE_FIELDS or not all(isinstance(outer[k], str) for k in ENVELOPE_FIELDS):
        key = outer.get("key") if isinstance(outer.get("key"), str) and KEY_ID.match(outer["key"]) else None
        if "sig" not in outer and "payload" in outer:
            return Refusal("unsigned: the envelope has no signature", key)
        return Refusal("malformed: the envelope must be {payload, key, sig}, all text", key)
    key_id = outer["key"]
    if not KEY_ID.match(key_id):
        return Refusal("malformed: the key id is not a key id")
    public = keys.get(key_id)
    if public is None:
        return Refusal(f"unknown key {key_id}: not listed in this site's [centre.keys]", key_id)
    body, sig = _unb64(outer["payload"]), _unb64(outer["sig"])
    if body is None or sig is None:
        return Refusal("malformed: payload or signature is not base64", key_id)
    if not sig:
        return Refusal("unsigned: the signature is empty", key_id)
    try:
        public.verify(sig, body)
    except InvalidSignature:
        return Refusal(f"bad signature: not signed by key {key_id}", key_id)
    payload = _json_object(body, "payload")
    if isinstance(payload, Refusal):
        return Refusal(payload.reason, key_id)
    command_id = payload.get("id") if isinstance(payload.get("id"), str) and COMMAND_ID.match(payload["id"]) else None
    if (problem := payload_problem(payload)) is not None:
        return Refusal(f"malformed: {problem}", key_id, command_id)
    return _in_force(payload, key_id, now, site_name, seen)


def _in_force(payload: dict, key_id: str, now: float, site_name: str, seen: Container[str]) -> Lockdown | Refusal:
    command_id = payload["id"]
    if payload["issued_at"] > now + CLOCK_SKEW_S:
        return Refusal(f"not yet valid: issued {payload['issued_at'] - now:.1f} s in the future", key_id, command_id)
    if now > payload["expires_at"] + CLOCK_SKEW_S:
        return Refusal(f"expired {now - payload['expires_at']:.1f} s ago", key_id, command_id)
    if ALL_SITES not in payload["sites"] and site_name not in payload["sites"]:
        return Refusal(f"site not named: the command is for {', '.join(payload['sites'])}", key_id, command_id)
    if command_id in seen:
        return Refusal(f"replayed: command {command_id} was already received", key_id, command_id)
    return Lockdown(id=command_id, sites=tuple(payload["sites"]), reason=payload["reason"],
                    operator=payload["operator"], issued_at=payload["issued_at"],
                    expires_at=payload["expires_at"], key_id=key_id)


def claimed(envelope: bytes) -> tuple[str | None, str | None]:
    """The key id and command id an envelope claims, unverified (to name a refused one); never raises."""
    outer = _json_object(bytes(envelope[:MAX_ENVELOPE_BYTES]), "envelope") if isinstance(envelope, bytes) else None
    if not isinstance(outer, dict):
        return None, None
    key = outer.get("key") if isinstance(outer.get("key"), str) and KEY_ID.match(outer["key"]) else None
    body = _unb64(outer["payload"]) if isinstance(outer.get("payload"), str) else None
    payload = _json_object(body, "payload") if body is not None else None
    found = payload.get("id") if isinstance(payload, dict) else None
    return key, found if isinstance(found, str) and COMMAND_ID.match(found) else None


def payload_problem(payload: dict) -> str | None:
    """What is wrong with a payload's fields (types, lengths, window), or None."""
    if set(payload) != PAYLOAD_FIELDS:
        return f"the payload's fields must be {', '.join(sorted(PAYLOAD_FIELDS))}"
    if payload["type"] != "lockdown":
        return f"type {str(payload['type'])[:40]!r} is not lockdown"
    if not isinstance(payload["id"], str) or not COMMAND_ID.match(payload["id"]):
        return "id must be 32 lower-case hex characters"
    sites = payload["sites"]
    if not isinstance(sites, list) or not sites or not all(isinstance(s, str) and s for s in sites):
        return "sites must be a non-empty list of site names"
    for name, most in (("reason", MAX_REASON), ("operator", MAX_OPERATOR)):
        value = payload[name]
        if not isinstance(value, str) or not 1 <= len(value) <= most or not value.strip():
            return f"{name} must be text of 1..{most} characters"
    times = (payload["issued_at"], payload["expires_at"])
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and abs(t) < 1e12 and math.isfinite(t)
               for t in times):  # abs first: an integer too large for a float is refused, never an OverflowError
        return "issued_at and expires_at must be finite numbers (unix seconds)"
    if not 0 < payload["expires_at"] - payload["issued_at"] <= MAX_WINDOW_S:
        return f"expires_at must come after issued_at, at most {MAX_WINDOW_S:.0f} s after"
    return None


def _json_object(data: bytes, what: str) -> dict | Refusal:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(f"malformed: the {what} is not UTF-8")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return Refusal(f"malformed: the {what} is not JSON")
    if not isinstance(value, dict):
        return Refusal(f"malformed: the {what} is not a JSON object")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


# ----- keys --------------------------------------------------------------------------------------------------


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    """The base64 of the raw 32-byte public key, as a site lists it in [centre.keys]."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its base64 text; ValueError naming what is wrong."""
    raw = _unb64(text) if isinstance(text, str) else None
    if raw is None:
        raise ValueError("is not base64")
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes, an Ed25519 public key is {PUBLIC_KEY_BYTES}")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


# ----- the site's answer -------------------------------------------------------------------------------------


def reply(command_id: str | None, site: str, received_at: float, *, refused: str | None = None,
          devices: Mapping[str, dict] | None = None, secured_s: float | None = None) -> dict:
    """The reply a site publishes: accepted with every device's outcome, or refused with the reason."""
    devices = dict(devices or {})
    all_secured = refused is None and bool(devices) and all(d["secured"] for d in devices.values())
    return {"id": command_id, "site": site, "accepted": refused is None, "reason": refused,
            "received_at": received_at, "devices": devices, "all_secured": all_secured,
            "secured_s": secured_s if all_secured else None}


def device_outcome(state: str, secured_at: float | None, why: str | None) -> dict:
    return {"secured": secured_at is not None, "state": state, "secured_at": secured_at, "why": why}
