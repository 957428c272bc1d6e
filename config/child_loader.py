"""load_site in a forked child: the caller gets the validated site or its refusal, and never imports pydantic.

barrierd starts this check first and imports the rest of itself while the child runs (pydantic with its schema
machinery is ≈ 11 MiB; barrierd without it peaks at ≈ 36 polling 64 PLCs). The child imports config.loader,
validates, sends back the site (a pickle of the frozen dataclasses) or the problems, and leaves with os._exit. A
child that cannot be started, dies or does not answer within the deadline is SiteCheckFailed: not a refusal of the file
(barrierd exits 1 and systemd starts it again), and never a half-checked site.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from config.errors import ConfigError
from config.schema import SiteConfig

DEADLINE_S = 20.0  # importing pydantic and validating take well under a second; systemd waits 30 s for READY


class SiteCheckFailed(Exception):
    """The check itself could not be carried out (no child, a child that died or overran): the file is not judged."""


def _load_site(path: Path) -> SiteConfig:
    from config.loader import load_site  # in the child only

    return load_site(path)


class SiteCheck:
    """`load(path)` (config.loader.load_site) running in a child forked at construction; `result()` waits for it.
    Start it while the process has one thread (before any loop); the caller may do other work meanwhile."""

    def __init__(self, path: Path | str, *, deadline_s: float = DEADLINE_S,
                 load: Callable[[Path], SiteConfig] = _load_site):
        self.path = Path(path)
        self.deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        # An ignored SIGCHLD (inherited through exec) would have the child reaped behind waitpid's back.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        read_end, write_end = os.pipe()
        try:
            self._pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            raise SiteCheckFailed(f"{self.path}: cannot start the check of this file: {exc}") from exc
        if self._pid == 0:
            gc.disable()  # short-lived: a collection would walk (and copy) every page of the parent's objects
            os.close(read_end)
            _answer(self.path, load, write_end)
        os.close(write_end)
        self._pipe = read_end

    def result(self) -> SiteConfig:
        """The validated site; ConfigError as load_site raises it; SiteCheckFailed if the child died or overran."""
        try:
            payload = _read_until(self._pipe, self._deadline)
        finally:
            os.close(self._pipe)
        if payload is None:
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            raise SiteCheckFailed(f"{self.path}: the check of this file did not finish within {self.deadline_s:g} s")
        _, status = os.waitpid(self._pid, 0)
        if status != 0:
            raise SiteCheckFailed(f"{self.path}: the check of this file ended without an answer ({_how(status)})")
        answer = pickle.loads(payload)
        if isinstance(answer, SiteConfig):
            return answer
        raise ConfigError(self.path, answer)


def load_site_in_child(path: Path | str, *, deadline_s: float = DEADLINE_S,
                       load: Callable[[Path], SiteConfig] = _load_site) -> SiteConfig:
    """load_site's answer, from a forked child: this process never imports pydantic."""
    return SiteCheck(path, deadline_s=deadline_s, load=load).result()


def _answer(path: Path, load: Callable[[Path], SiteConfig], out: int) -> NoReturn:
    """The child: the site or the list of problems, pickled into `out`; exit status 0 only once it is all written."""
    status = 1
    try:
        try:
            answer: object = load(path)
        except ConfigError as exc:
            answer = exc.problems
        with open(out, "wb") as pipe:
            pipe.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        status = 0
    except BrokenPipeError:  # the parent is gone (stopped while waiting): nobody to tell
        pass
    except BaseException:  # noqa: BLE001  # anything else: told on stderr, and the parent refuses the file
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(status)  # no atexit handlers, no flushing of buffers copied from the parent


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to the pipe until the child closed it (it exits), or None once the deadline passes with
    nothing more to read (an answer already waiting is taken however late the caller comes for it)."""
    chunks: list[bytes] = []
    while True:
        if not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"killed by signal {number}, {signal.strsignal(number)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
