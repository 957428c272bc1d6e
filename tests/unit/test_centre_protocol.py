"""The centre's signed lockdown protocol: every refusal named, an accepted command read back, no input raises."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from centre import protocol

NOW = 1_800_000_000.0
SITE = "north"
KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
KEYS = {"hq-1": KEY.public_key(), "hq-2": OTHER.public_key()}


def payload(**changes) -> dict:
    body = {"type": "lockdown", "id": "0123456789abcdef0123456789abcdef", "sites": [SITE, "south"],
            "reason": "armed vehicle", "operator": "duty-1", "issued_at": NOW, "expires_at": NOW + 30}
    return {**body, **changes}


def envelope(body: dict | None = None, key=KEY, key_id: str = "hq-1") -> bytes:
    return protocol.sign(key, key_id, body or payload())


def refused(data: bytes, now: float = NOW, seen=()) -> str:
    result = protocol.verify(data, KEYS, now, SITE, set(seen))
    assert isinstance(result, protocol.Refusal), result
    return result.reason


def resigned(outer: dict) -> bytes:
    return json.dumps(outer).encode()


def test_a_valid_command_is_accepted_with_its_fields():
    result = protocol.verify(envelope(), KEYS, NOW + 1, SITE, set())
    assert isinstance(result, protocol.Lockdown)
    assert (result.id, result.operator, result.key_id, result.reason) == (
        "0123456789abcdef0123456789abcdef", "duty-1", "hq-1", "armed vehicle")
    assert isinstance(protocol.verify(envelope(payload(sites=["*"])), KEYS, NOW, SITE, set()), protocol.Lockdown)


def test_the_signed_bytes_are_canonical_json():
    body = json.loads(base64.b64decode(json.loads(envelope())["payload"]))
    assert base64.b64decode(json.loads(envelope())["payload"]) == json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert protocol.canonical({"b": "é", "a": 1}) == '{"a":1,"b":"é"}'.encode()


def test_unsigned_and_empty_signature_are_refused():
    outer = json.loads(envelope())
    assert refused(resigned({"payload": outer["payload"], "key": "hq-1"})).startswith("unsigned")
    assert refused(resigned({**outer, "sig": ""})).startswith("unsigned")


def test_an_unknown_key_is_refused():
    assert refused(envelope(key_id="stranger")).startswith("unknown key stranger")


def test_another_listed_keys_signature_is_refused():
    assert refused(envelope(key=OTHER, key_id="hq-1")).startswith("bad signature")


def test_a_tampered_payload_is_refused():
    outer = json.loads(envelope())
    tampered = protocol.canonical(payload(sites=["*"]))
    assert refused(resigned({**outer, "payload": base64.b64encode(tampered).decode()})).startswith("bad signature")


@pytest.mark.parametrize(("now", "words"), [
    (NOW + 30 + protocol.CLOCK_SKEW_S + 0.1, "expired"),
    (NOW - protocol.CLOCK_SKEW_S - 0.1, "not yet valid"),
])
def test_outside_its_window_with_the_skew_is_refused(now, words):
    assert refused(envelope(), now=now).startswith(words)


def test_within_the_skew_is_accepted():
    for now in (NOW - protocol.CLOCK_SKEW_S + 0.1, NOW + 30 + protocol.CLOCK_SKEW_S - 0.1):
        assert isinstance(protocol.verify(envelope(), KEYS, now, SITE, set()), protocol.Lockdown)


def test_a_window_over_sixty_seconds_is_refused():
    assert "at most 60 s" in refused(envelope(payload(expires_at=NOW + 60.5)))
    assert "after issued_at" in refused(envelope(payload(expires_at=NOW)))


def test_a_replayed_id_is_refused():
    reason = refused(envelope(), seen={"0123456789abcdef0123456789abcdef"})
    assert reason.startswith("replayed")


def test_a_site_not_named_is_refused():
    assert refused(envelope(payload(sites=["south"]))).startswith("site not named")


@pytest.mark.parametrize("data", [
    b"", b"{", b"[]", b"\xff\xfe{}", b"null", b'{"payload": 1, "key": "hq-1", "sig": "AA=="}',
    b'{"payload": "!!", "key": "hq-1", "sig": "!!"}', b'{"payload": "", "key": "bad key", "sig": ""}',
    b'{"payload": "", "key": "hq-1", "sig": "", "extra": 1}', b"x" * (protocol.MAX_ENVELOPE_BYTES + 1),
    b'{"a": NaN}',
])
def test_malformed_envelopes_are_refused(data):
    assert refused(data).startswith("malformed")


@pytest.mark.parametrize("change", [
    {"type": "open"}, {"id": "ABC"}, {"id": 5}, {"sites": []}, {"sites": "north"}, {"sites": [1]},
    {"reason": ""}, {"reason": "x" * 501}, {"operator": "x" * 65}, {"operator": 3}, {"issued_at": "now"},
    {"expires_at": True}, {"extra": 1},
])
def test_signed_payloads_with_wrong_fields_or_types_are_refused(change):
    assert refused(envelope(payload(**change))).startswith("malformed")


def test_a_signed_payload_that_is_not_utf8_or_json_is_refused():
    for body in (b"\xff\xfe", b"not json", b"[1]"):
        outer = {"payload": base64.b64encode(body).decode(), "key": "hq-1", "sig": base64.b64encode(KEY.sign(body)).decode()}
        assert refused(resigned(outer)).startswith("malformed")


def test_claimed_names_a_refused_envelopes_key_and_id_unverified():
    assert protocol.claimed(envelope(key=OTHER)) == ("hq-1", "0123456789abcdef0123456789abcdef")
    assert protocol.claimed(b"\xff") == (None, None)


def test_new_payload_refuses_what_a_site_would_refuse():
    with pytest.raises(ValueError, match="at most 60 s"):
        protocol.new_payload(["north"], "why", "duty-1", NOW, ttl_s=61)
    assert protocol.payload_problem(protocol.new_payload(["north"], "why", "duty-1", NOW)) is None


def test_keys_round_trip_and_bad_public_keys_are_named():
    pem = protocol.private_key_pem(KEY)
    again = protocol.load_private_key(pem)
    assert protocol.public_key_text(again) == protocol.public_key_text(KEY)
    with pytest.raises(ValueError, match="not base64"):
        protocol.load_public_key("***")
    with pytest.raises(ValueError, match="16 bytes"):
        protocol.load_public_key(base64.b64encode(b"x" * 16).decode())


def test_a_reply_is_all_secured_only_when_every_device_is():
    good = protocol.device_outcome("closed", NOW + 2, None)
    bad = protocol.device_outcome("fault", None, "stuck")
    assert protocol.reply("i", SITE, NOW, devices={"a": good}, secured_s=2.0)["all_secured"] is True
    mixed = protocol.reply("i", SITE, NOW, devices={"a": good, "b": bad}, secured_s=2.0)
    assert (mixed["all_secured"], mixed["secured_s"]) == (False, None)
    no = protocol.reply("i", SITE, NOW, refused="expired")
    assert (no["accepted"], no["reason"], no["all_secured"]) == (False, "expired", False)


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"payload": st.one_of(st.text(max_size=40), json_values.map(
        lambda v: base64.b64encode(json.dumps(v).encode()).decode())), "key": st.sampled_from(["hq-1", "x y", ""]),
        "sig": st.text(max_size=90)}).map(lambda d: json.dumps(d).encode()),
    st.dictionaries(st.sampled_from(sorted(protocol.PAYLOAD_FIELDS)), json_values).map(
        lambda d: protocol.sign(KEY, "hq-1", d) if _canonical_ok(d) else b"{}"),
))
def test_random_envelopes_never_raise_and_are_never_accepted(data):
    result = protocol.verify(data, KEYS, NOW, SITE, set())
    assert isinstance(result, protocol.Refusal) and result.reason
    protocol.claimed(data)


def _canonical_ok(body: dict) -> bool:
    try:
        protocol.canonical(body)
    except ValueError:
        return False
    return True


def test_a_signed_time_too_large_for_a_float_is_refused_not_raised():
    assert "finite numbers" in refused(envelope(payload(issued_at=10**400, expires_at=10**400 + 30)))
