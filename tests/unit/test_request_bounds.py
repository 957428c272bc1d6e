"""Unit: what a control request line may be: size, depth, numbers, Unicode, an object; and barrierctl's text check."""

from __future__ import annotations

import json
import time

import pytest

from controller.cli import main as barrierctl
from controller.request_bounds import MAX_DEPTH, MAX_REQUEST_BYTES, MalformedRequest, parse_request


def nested(depth: int) -> bytes:
    """A request whose args hold lists `depth` levels deep in all (the request object counted)."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return f'{{"command":"open","args":{{"device":"gate-1","x":{inner}}}}}'.encode()


def test_a_well_formed_request_is_its_object() -> None:
    line = '{"command":"lockdown","args":{"reason":"intrus \u202e🚧\\u0001 ok","lane":null,"n":-9007199254740992}}'
    assert parse_request(line.encode()) == {
        "command": "lockdown", "args": {"reason": "intrus \u202e🚧\x01 ok", "lane": None, "n": -(2**53)}}


def test_depth_is_bounded_at_eight_levels() -> None:
    assert parse_request(nested(MAX_DEPTH))["args"]["device"] == "gate-1"
    with pytest.raises(MalformedRequest, match="nested deeper than 8"):
        parse_request(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("line", [
    nested(980),  # the depth that once opened a gate with no reply
    b"[" * 60_000,  # once a RecursionError in the parser
    b'{"command":"open","args":{"device":"gate-1","x":' + b"{\"a\":" * 5000 + b"1" + b"}" * 5000 + b"}}",
])
def test_deep_requests_are_refused_before_any_parser_recursion(line: bytes) -> None:
    with pytest.raises(MalformedRequest, match="nested deeper|too large"):
        parse_request(line)


def test_brackets_inside_strings_do_not_count_and_unterminated_strings_stay_linear() -> None:
    deep_text = '{"command":"lockdown","args":{"reason":"' + "[{" * 200 + '\\"]}"}}'
    assert parse_request(deep_text.encode())["args"]["reason"].startswith("[{[{")
    hostile = b'"\\' * (MAX_REQUEST_BYTES // 2)  # quadratic for a naive string-stripping regex
    started = time.perf_counter()
    with pytest.raises(MalformedRequest):
        parse_request(hostile)
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize("number", ["9" * 30, "9007199254740993", "-9007199254740993", "1" * 5000, "1e999",
                                    "-1e999", "NaN", "Infinity", "-Infinity"])
def test_numbers_beyond_2_53_or_not_finite_are_refused(number: str) -> None:
    with pytest.raises(MalformedRequest, match="out of range|not a number"):
        parse_request(f'{{"command":"events","args":{{"after":{number}}}}}'.encode())


def test_a_line_over_16_kib_is_refused() -> None:
    body = json.dumps({"command": "lockdown", "args": {"reason": "x" * MAX_REQUEST_BYTES}}).encode()
    with pytest.raises(MalformedRequest, match="too large"):
        parse_request(body)


@pytest.mark.parametrize("line", [
    b'{"command":"lockdown","args":{"reason":"intruder\xff"}}',  # raw bytes that are not UTF-8
    b'{"command":"lockdown","args":{"reason":"intruder\\udcff"}}',  # a surrogate escape, as Python sent it
    b'{"command":"lockdown","args":{"reason\\ud800":"x"}}',  # in a key
    b'{"command":"lockdown","args":{"reason":["ok",{"a":"\\udfff"}]}}',  # deep in a list
    b'\xed\xb3\xbf',  # an encoded surrogate is not UTF-8 either
])
def test_text_that_is_not_valid_unicode_is_refused(line: bytes) -> None:
    with pytest.raises(MalformedRequest, match=r"not valid Unicode \(UTF-8\)"):
        parse_request(line)


def test_args_may_be_absent_or_null() -> None:
    assert parse_request(b'{"command":"status"}') == {"command": "status"}
    assert parse_request(b'{"command":"status","args":null}')["args"] is None


def test_a_surrogate_pair_escape_is_one_valid_character() -> None:
    assert parse_request(b'{"command":"x","args":{"r":"\\ud83d\\udea7"}}')["args"]["r"] == "🚧"


@pytest.mark.parametrize("line", [b"[]", b'"open"', b"42", b"null", b"", b"\xef\xbb\xbf{}", b"{", b'{"a":1}{}', b"{}",
                                  b'{"command":7}', b'{"command":["open"]}', b'{"command":"open","args":"0"}',
                                  b'{"command":"open","args":[{"device":"gate-1"}]}'])
def test_anything_but_one_json_object_is_refused(line: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(line)


def test_barrierctl_refuses_text_that_is_not_unicode_and_sends_nothing(tmp_path, capsys) -> None:
    listener_path = tmp_path / "nothing-listens-here.sock"
    code = barrierctl(["--socket", str(listener_path), "lockdown", "--reason", "intruder\udcff"])
    assert code == 2
    assert "the reason 'intruder\\xff' is not valid Unicode (UTF-8); nothing sent" in capsys.readouterr().err
    assert barrierctl(["--socket", str(listener_path), "maintenance", "enter", "lane-\udcc3", "--reason", "x"]) == 2


def test_barrierctl_sends_any_valid_unicode(tmp_path, capsys) -> None:
    code = barrierctl(["--socket", str(tmp_path / "absent.sock"), "lockdown", "--reason", "\x01 \u202e 🚧 ü"])
    assert code == 5  # it tried to send: the daemon is simply not there
