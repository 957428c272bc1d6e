"""Typed HAL errors: every failed exchange with a PLC is one of these, never a None or a default value."""

from __future__ import annotations


class HalError(Exception):
    """Base of every error the HAL raises."""


class CommsError(HalError):
    """No valid reply: timeout, connection refused or lost, garbage on the wire."""


class BadReplyError(CommsError):
    """A reply arrived but failed validation (function code, count, unit, value ranges)."""


class ExceptionReplyError(CommsError):
    """The PLC answered with a Modbus exception response."""

    def __init__(self, function_code: int, exception_code: int, what: str):
        self.function_code = function_code
        self.exception_code = exception_code
        super().__init__(f"{what}: PLC answered exception 0x{exception_code:02X} to function {function_code}")


class NotConnectedError(CommsError):
    """The transport has no open connection to the PLC."""
