"""What one control request line may be: size, depth, number range, valid Unicode, {"command": str, "args": {...}}."""

from __future__ import annotations

import json
import math
import re

MAX_REQUEST_BYTES = 16 * 1024
MAX_DEPTH = 8  # objects and arrays inside one another, the request object itself counted
MAX_SAFE_INTEGER = 2**53  # beyond this a JSON number is not exact for every reader
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))

# a string (to its closing quote, or to the end if it has none) or a bracket: one linear pass
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class MalformedRequest(ValueError):
    """A request line refused before dispatch; the message says why, for the caller."""


def parse_request(line: bytes) -> dict:
    """The request object in `line` (without its newline), or MalformedRequest naming the first bound broken."""
    if len(line) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"request too large: {len(line)} bytes, at most {MAX_REQUEST_BYTES}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"not valid Unicode (UTF-8): byte {exc.start}") from None
    _check_depth(text)
    try:
        request = json.loads(text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise MalformedRequest(f"a request is a JSON object, not {_json_type(request)}")
    _check_unicode(request)
    if not isinstance(request.get("command"), str):
        raise MalformedRequest(f'"command" must be a string, not {_json_type(request.get("command"))}')
    if request.get("args") is not None and not isinstance(request["args"], dict):
        raise MalformedRequest(f'"args" must be an object, not {_json_type(request["args"])}')
    return request


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_depth(text: str) -> None:
    """Count bracket depth outside strings, so no parser recursion is ever reached by a deep request."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
        elif bracket in ("]", "}"):
            depth -= 1
        if depth > MAX_DEPTH:
            raise MalformedRequest(f"nested deeper than {MAX_DEPTH} levels")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_INTEGER_DIGITS or abs(value := int(digits)) > MAX_SAFE_INTEGER:
        raise MalformedRequest(f"integer out of range: {digits[:24]}{'...' if len(digits) > 24 else ''}"
                               f" (at most ±2**53)")
    return value


def _finite_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise MalformedRequest(f"number out of range: {digits[:24]}")
    return value


def _no_constant(name: str) -> float:
    raise MalformedRequest(f"{name} is not a number a request may hold")


def _check_unicode(value: object) -> None:
    """Every string, keys included, must be encodable as UTF-8 (no lone surrogates from \\udXXX escapes)."""
    if isinstance(value, str):
        _encodable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _encodable(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedRequest("not valid Unicode (UTF-8): a string holds a lone surrogate") from None
