"""A virtual RS-485 line: two pseudo-terminal pairs joined by a relay that paces bytes like a UART.

`VirtualLine(link_a, link_b, baudrate)` makes two pty pairs, sets their slave ends raw 8N1 and
symlinks link_a and link_b to them: a master (barrierd, minimalmodbus) opens one link, the slaves
(sim-plc --serial) the other. A pty ignores the baud rate, so the relay gives the line its timing:
each byte it reads is delivered one character time (10 bits / baud) after the previous byte in the
same direction finished, and no sooner than one character time after it was read — write-time
pacing, so frames take as long as on a real line. No byte is handed over before its time; bytes
due within BURST_S of each other are handed over together (as a USB adapter does), which keeps
the relay's wake-ups few while the last byte of a frame still arrives exactly on time. Each
direction is paced on its own (like a 4-wire line); the master/slave protocol never sends both
ways at once. Bytes nobody reads are dropped once the pty buffer is full, as on a wire with no
listener.

Fault hook: delay_next_reply(seconds, unit) holds the next frame the slave side sends (optionally
only one starting with that unit id) for that long, e.g. to deliver it after the master's timeout.

Run it in a thread (start/stop, or as a context manager), in the calling thread (run, as
`sim-plc vline` does), or as a child process (LineProcess: its pacing never waits for the GIL of a
busy test or benchmark process).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

BITS_PER_CHAR = 10  # 8N1: start, 8 data, stop
READ_SIZE = 4096
BURST_S = 0.001  # bytes due within this long are handed over together, at the last one's time
UNSURE_WRITE_S = 0.0002  # a hand-over write that took longer leaves its time unsure for gap measurement


@dataclass
class _Direction:
    """One way through the relay: bytes read from `src`, each due at its time, written to `dst`."""

    name: str
    src: int
    dst: int
    pending: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    busy_until: float = 0.0  # when the last scheduled byte has left the wire
    last_read_at: float = 0.0
    last_delivered_at: float | None = None  # when the last byte was handed to the far end
    shortest_gap_s: float | None = None  # shortest quiet time before a frame, after the other direction's last byte
    delivery_unsure: bool = False  # the last hand-over's time is not known to within UNSURE_WRITE_S
    relayed: int = 0
    dropped: int = 0


class VirtualLine:
    """Two pty pairs and a pacing relay between their master ends; the links name the slave ends."""

    def __init__(self, link_a: Path | str, link_b: Path | str, baudrate: int = 19200) -> None:
        if baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self.link_a = Path(link_a)
        self.link_b = Path(link_b)
        self.baudrate = baudrate
        self.char_s = BITS_PER_CHAR / baudrate
        self._fds: list[int] = []
        self._a: _Direction | None = None  # link_a side → link_b side (requests)
        self._b: _Direction | None = None  # link_b side → link_a side (replies)
        self._stop_r = self._stop_w = -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._delay: tuple[float, int | None] | None = None
        self._stop_requested = False
        self.delayed_frames = 0

    # ---- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Create the ptys and the links; the relay does not run yet."""
        master_a, slave_a = self._pty()
        master_b, slave_b = self._pty()
        self._stop_r, self._stop_w = os.pipe()
        self._fds += [self._stop_r, self._stop_w]
        self._a = _Direction("a->b", master_a, master_b)
        self._b = _Direction("b->a", master_b, master_a)
        self._link(self.link_a, os.ttyname(slave_a))
        self._link(self.link_b, os.ttyname(slave_b))

    def start(self) -> VirtualLine:
        """Open and run the relay in a background thread."""
        self._stop_requested = False
        if not self._fds:
            self.open()
        self._thread = threading.Thread(target=self.run, name=f"vline-{self.link_a.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the relay, close both pty pairs (their users see a hang-up) and remove the links."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.close()

    def request_stop(self) -> None:
        """Make run() return soon; safe from a signal handler or another thread."""
        self._stop_requested = True
        if self._stop_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._stop_w, b"x")

    def close(self) -> None:
        for link in (self.link_a, self.link_b):
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith("/dev/"):
                    link.unlink()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._stop_r = self._stop_w = -1

    def __enter__(self) -> VirtualLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- fault hook and figures ---------------------------------------------------------------
    def delay_next_reply(self, seconds: float, unit: int | None = None) -> None:
        """Hold the next frame from the link_b side (a slave's reply) `seconds` longer than its pacing."""
        with self._lock:
            self._delay = (seconds, unit)

    @property
    def delay_armed(self) -> bool:
        """True until the frame that delay_next_reply() holds back has been read from the slave side."""
        with self._lock:
            return self._delay is not None

    @property
    def stats(self) -> dict[str, int]:
        a, b = self._a, self._b
        assert a is not None and b is not None
        return {"a_to_b": a.relayed, "b_to_a": b.relayed, "dropped": a.dropped + b.dropped,
                "delayed_frames": self.delayed_frames}

    @property
    def shortest_gaps_s(self) -> dict[str, float | None]:
        """Per direction, the shortest silence seen on the line before a frame (t3.5 is the least allowed)."""
        a, b = self._a, self._b
        assert a is not None and b is not None
        return {"a_to_b": a.shortest_gap_s, "b_to_a": b.shortest_gap_s}

    # ---- the relay ----------------------------------------------------------------------------
    def run(self) -> None:
        """Relay until request_stop(); paced delivery with microsecond select timeouts."""
        if not self._fds:
            self.open()
        a, b = self._a, self._b
        assert a is not None and b is not None
        sources = {a.src: a, b.src: b}
        while not self._stop_requested:
            now = time.monotonic()
            for direction in (a, b):
                self._deliver(direction, now)
            wakes = [self._next_handover(d) for d in (a, b) if d.pending]
            timeout = max(0.0, min(wakes) - time.monotonic()) if wakes else None
            ready, _, _ = select.select([a.src, b.src, self._stop_r], [], [], timeout)
            if self._stop_r in ready:
                return
            for fd in ready:
                self._receive(sources[fd])

    def _receive(self, direction: _Direction) -> None:
        try:
            data = os.read(direction.src, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: nothing holds the slave end open (cannot happen: we hold it)
            if exc.errno != errno.EIO:
                raise
            time.sleep(self.char_s)
            return
        now = time.monotonic()
        start = max(now, direction.busy_until)
        if self._starts_frame(direction, now, data):
            self._note_gap(direction, now)
            if direction is self._b:
                start = max(start, now + self._take_delay(data[0]))
        direction.last_read_at = now
        for i, byte in enumerate(data):
            direction.pending.append((start + (i + 1) * self.char_s, byte))
        direction.busy_until = start + len(data) * self.char_s

    def _starts_frame(self, direction: _Direction, now: float, data: bytes) -> bool:
        return bool(data) and not direction.pending and now - direction.last_read_at > 1.5 * self.char_s

    def _note_gap(self, direction: _Direction, now: float) -> None:
        """The line's quiet time before this frame: since the other direction's last byte (negative: a collision)."""
        other = self._b if direction is self._a else self._a
        assert other is not None
        if other.pending:
            other_end: float | None = other.pending[-1][0]  # still on the wire: a collision
        elif other.delivery_unsure:
            return
        else:
            other_end = other.last_delivered_at
        if other_end is None:
            return
        gap = now - other_end
        if direction.shortest_gap_s is None or gap < direction.shortest_gap_s:
            direction.shortest_gap_s = gap

    def _take_delay(self, unit: int) -> float:
        with self._lock:
            if self._delay is None:
                return 0.0
            seconds, only_unit = self._delay
            if only_unit is not None and only_unit != unit:
                return 0.0
            self._delay = None
        self.delayed_frames += 1
        return seconds

    @staticmethod
    def _next_handover(direction: _Direction) -> float:
        """When to hand over the next burst: the due time of its last byte."""
        head = direction.pending[0][0]
        last = head
        for due, _ in direction.pending:
            if due > head + BURST_S:
                break
            last = due
        return last

    @staticmethod
    def _deliver(direction: _Direction, now: float) -> None:
        due = bytearray()
        while direction.pending and direction.pending[0][0] <= now:
            due.append(direction.pending.popleft()[1])
        if not due:
            return
        before = time.monotonic()
        try:
            written = os.write(direction.dst, due)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            written = 0
        direction.relayed += written
        direction.dropped += len(due) - written
        # The frame is on the far side at the latest when the write returned: a gap measured from then is
        # never longer than it was. If the write took long (the relay was held up), the time is unsure
        # and the next gap is not measured at all.
        after = time.monotonic()
        direction.last_delivered_at = after
        direction.delivery_unsure = after - before > UNSURE_WRITE_S

    # ---- set-up helpers -----------------------------------------------------------------------
    def _pty(self) -> tuple[int, int]:
        master, slave = os.openpty()
        self._fds += [master, slave]  # the slave stays open here, so the master never reads EIO
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[2] = (attrs[2] & ~(termios.PARENB | termios.CSTOPB | termios.CSIZE)) | termios.CS8 | termios.CLOCAL
        speed = getattr(termios, f"B{self.baudrate}", None)
        if speed is not None:
            attrs[4] = attrs[5] = speed
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        return master, slave

    @staticmethod
    def _link(link: Path, target: str) -> None:
        if link.is_symlink():
            link.unlink()  # left behind by a line that died
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a symlink")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


class LineProcess:
    """`sim-plc vline` as a child process: start() returns once its links exist; stop() removes them."""

    def __init__(self, link_a: Path | str, link_b: Path | str, baudrate: int = 19200) -> None:
        self.link_a, self.link_b, self.baudrate = Path(link_a), Path(link_b), baudrate
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 15.0) -> LineProcess:
        argv = [sys.executable, "-m", "sim_plc.cli", "vline", "--baud", str(self.baudrate),
                str(self.link_a), str(self.link_b)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        try:
            if json.loads(line).get("event") == "vline_ready":
                return self
        except json.JSONDecodeError:
            pass
        self.stop()
        raise RuntimeError(f"sim-plc vline did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.proc = None

    def __enter__(self) -> LineProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
