"""An asyncio event loop whose timers wake within microseconds, for the t3.5 silence of Modbus RTU.

The default loop waits in epoll, which counts whole milliseconds and rounds every wait up: a
1.75 ms silence before an RTU request (the fixed t3.5 above 19200 baud) then lasts 2 to 3 ms, a
loss of up to a fifth of a 115200-baud line. PreciseEpollSelector waits on the epoll descriptor
itself with select(), which counts microseconds (an epoll descriptor is readable when any of its
descriptors has an event), then collects the events with a zero-timeout epoll. Only the epoll
descriptor goes through select(), so the FD_SETSIZE limit of select() does not apply to the
sockets and serial ports the loop serves. Linux also lets every timer of a thread run up to 50 us
late to save power (timer slack); run() sets the slack of the loop's thread to 1 us.

A site without an RS-485 line needs no such timers: run(precise=False) takes uvloop where it is
installed (its clock and timers count whole milliseconds; its polling costs about half of asyncio's).
"""

from __future__ import annotations

import asyncio
import select
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("hal.event_loop")

SELECT_FD_LIMIT = 1024  # FD_SETSIZE on Linux: select() cannot wait on a descriptor at or above it
PR_SET_TIMERSLACK = 29  # prctl(2) option: the calling thread's timer slack in nanoseconds
TIMER_SLACK_NS = 1000
PRECISE_WAKE_SLACK_S = 1e-6  # a due time is passed by this much on a precise loop ...
COARSE_WAKE_SLACK_S = 1e-3  # ... and by a clock tick on uvloop, or a wake before it would spin until the tick


class PreciseEpollSelector(selectors.EpollSelector):
    """EpollSelector whose waits with a timeout are precise to the microsecond, not the millisecond."""

    def __init__(self) -> None:
        super().__init__()
        if self._selector.fileno() >= SELECT_FD_LIMIT:  # type: ignore[attr-defined]
            log.warning("precise_timers_unavailable", reason="epoll descriptor above FD_SETSIZE",
                        fd=self._selector.fileno())  # type: ignore[attr-defined]

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        epoll_fd = self._selector.fileno()  # type: ignore[attr-defined]
        if timeout is not None and timeout > 0 and epoll_fd < SELECT_FD_LIMIT:
            select.select([epoll_fd], [], [], timeout)
            timeout = 0
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop on PreciseEpollSelector (for asyncio.Runner's loop_factory)."""
    return asyncio.SelectorEventLoop(PreciseEpollSelector())


def reduce_timer_slack(nanoseconds: int = TIMER_SLACK_NS) -> bool:
    """Let the kernel wake this thread's timers at most `nanoseconds` late; False where it cannot."""
    import ctypes  # imported here: only the precise loop (an RTU line) needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def wake_slack_s(loop: asyncio.AbstractEventLoop) -> float:
    """How far past a due time a timer should be set so that `loop.time()` has reached it on waking:
    a microsecond on an asyncio loop, a millisecond on uvloop (whose clock counts milliseconds)."""
    return PRECISE_WAKE_SLACK_S if isinstance(loop, asyncio.BaseEventLoop) else COARSE_WAKE_SLACK_S


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # imported here: only a site without an RTU line runs on it
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, precise: bool = True) -> T:
    """asyncio.run on a precise loop, with the timer slack of this thread reduced; with precise=False,
    on uvloop where it is installed (else the precise loop all the same)."""
    factory = None if precise else _uvloop_factory()
    if factory is None:
        reduce_timer_slack()
        factory = new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
