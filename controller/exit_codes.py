"""barrierctl exit codes, stable for scripts; kept apart so the CLI starts without loading the daemon."""

from enum import IntEnum


class ExitCode(IntEnum):
    DONE = 0
    ERROR = 1
    USAGE = 2
    REFUSED = 3  # refused by state or interlock; the message names the rule
    NOT_AUTHORISED = 4
    UNREACHABLE = 5
