"""Unit: the control server on a real Unix socket in virtual loop time: deadlines, caps, refusal rate, answers."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket

import pytest
from structlog.testing import capture_logs

from controller import control_socket
from controller.connection_limits import ConnectionCaps, RefusalBudget
from controller.control_socket import ControlServer
from controller.auth import Caller

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


class Recorder:
    """A dispatcher that records what reached it and answers as told."""

    def __init__(self, reply: dict | None = None, fail: Exception | None = None):
        self.requests: list[dict] = []
        self.reply = reply or {"exit": 0, "outcome": "done", "message": "ok", "data": None}
        self.fail = fail

    async def __call__(self, request: dict, caller: Caller) -> dict:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        return self.reply


def identify(pid: int, uid: int, gid: int) -> Caller:
    return Caller(uid=uid, gid=gid, pid=pid, user="tester", role="viewer")


async def started(tmp_path, dispatch: Recorder, **kwargs) -> ControlServer:
    server = ControlServer(tmp_path / "c.sock", dispatch, identify, **kwargs)
    await server.start()
    return server


def connect(server: ControlServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(server.path))
    sock.setblocking(False)
    return sock


def received(sock: socket.socket) -> tuple[list[dict], bool]:
    """Reply lines waiting on `sock`, and whether the server has closed it."""
    data, closed = b"", False
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            break
        except ConnectionResetError:  # closed with our unread bytes in its queue: the replies came first
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()], closed


async def test_a_connection_trickling_bytes_is_answered_and_closed_at_the_read_deadline(tmp_path) -> None:
    dispatch = Recorder()
    server = await started(tmp_path, dispatch, read_deadline_s=5.0, idle_timeout_s=30.0)
    sock = connect(server)
    loop = asyncio.get_running_loop()
    start = loop.time()
    closed_at = None
    for byte in b'{"command":"status"':
        sock.send(bytes([byte]))
        await asyncio.sleep(1.0)
        replies, closed = received(sock)
        if closed:
            closed_at = loop.time() - start
            break
    assert closed_at is not None and 5.0 <= closed_at <= 6.0, closed_at
    assert replies == [{"exit": 2, "outcome": "usage", "data": None,
                        "message": "request not complete within 5 s of its first byte; closing"}]
    assert dispatch.requests == []
    await server.stop()


async def test_an_idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not(tmp_path) -> None:
    server = await started(tmp_path, Recorder(), read_deadline_s=5.0, idle_timeout_s=30.0)
    idle, busy = connect(server), connect(server)
    idle_replies, idle_closed_after, busy_replies = [], None, []
    await asyncio.sleep(25.0)
    assert received(idle) == ([], False), "still open after 25 s"
    for tick in range(3, 9):
        busy.send(b'{"command":"status"}\n')
        await asyncio.sleep(5.0 if tick == 3 else 10.0)
        replies, closed = received(idle)
        idle_replies += replies
        if closed and idle_closed_after is None:
            idle_closed_after = tick * 10
        replies, busy_closed = received(busy)
        busy_replies += replies
        assert not busy_closed, f"a connection with a request every 10 s was closed after {tick * 10} s"
    assert idle_closed_after in (30, 40), "closed when 30 s had passed, not before"
    assert [r["message"] for r in idle_replies] == ["no request for 30 s; closing"]
    assert [r["exit"] for r in busy_replies] == [0] * 6
    await server.stop()


async def test_the_idle_connection_gets_a_reply_then_eof(tmp_path) -> None:
    server = await started(tmp_path, Recorder(), read_deadline_s=5.0, idle_timeout_s=30.0)
    sock = connect(server)
    await asyncio.sleep(29.0)
    assert received(sock) == ([], False)
    await asyncio.sleep(2.0)
    replies, closed = received(sock)
    assert closed and replies[0]["exit"] == 1 and replies[0]["message"] == "no request for 30 s; closing"
    await server.stop()


async def test_an_oversize_line_gets_a_usage_reply_and_the_connection_is_closed(tmp_path) -> None:
    dispatch = Recorder()
    server = await started(tmp_path, dispatch)
    sock = connect(server)
    sock.setblocking(True)
    sock.settimeout(0)
    try:
        sock.send(b'{"command":"lockdown","args":{"reason":"' + b"x" * 70_000 + b'"}}\n')
    except BlockingIOError:
        pass
    await asyncio.sleep(1.0)
    replies, closed = received(sock)
    assert closed and replies[0]["exit"] == 2 and replies[0]["outcome"] == "usage"
    assert replies[0]["message"].startswith("request too large")
    assert dispatch.requests == []
    await server.stop()


async def test_every_malformed_request_is_answered_and_never_dispatched(tmp_path) -> None:
    dispatch = Recorder()
    server = await started(tmp_path, dispatch)
    sock = connect(server)
    bad = [b"[" * 60_00, b'{"command":"events","args":{"after":' + b"9" * 30 + b"}}", b"\xff\xfe",
           b'{"command":"lockdown","args":{"reason":"intruder\\udcff"}}', b"[1]", b"{", b"NaN"]
    sock.send(b"\n".join(bad) + b"\n" + b'{"command":"status"}\n')
    await asyncio.sleep(0.5)
    replies, closed = received(sock)
    assert not closed
    assert [r["exit"] for r in replies] == [2] * len(bad) + [0]
    assert all(r["message"].startswith("malformed request: ") for r in replies[:-1])
    assert "not valid Unicode (UTF-8)" in replies[3]["message"]
    assert dispatch.requests == [{"command": "status"}]
    await server.stop()


async def test_a_dispatcher_that_raises_still_answers(tmp_path) -> None:
    server = await started(tmp_path, Recorder(fail=OverflowError("int too large to convert")))
    sock = connect(server)
    sock.send(b'{"command":"events"}\n{"command":"events"}\n')
    await asyncio.sleep(0.5)
    replies, closed = received(sock)
    assert not closed and [r["exit"] for r in replies] == [1, 1]
    assert replies[0]["message"] == "internal error: OverflowError: int too large to convert"
    await server.stop()


async def test_connections_over_the_per_uid_cap_are_told_and_closed_at_once(tmp_path) -> None:
    me = os.geteuid()
    caps = ConnectionCaps(privileged_uids=(), per_uid=3, overall=10)
    server = await started(tmp_path, Recorder(), caps=caps)
    with capture_logs() as logs:
        socks = [connect(server) for _ in range(50)]
        await asyncio.sleep(0.5)
    results = [received(s) for s in socks]
    assert [closed for _, closed in results] == [False] * 3 + [True] * 47
    assert all(replies == [{"exit": 1, "outcome": "error", "data": None,
                            "message": f"too many connections from uid {me} (at most 3)"}]
               for replies, _ in results[3:])
    assert len([e for e in logs if e["event"] == "control_connections_turned_away"]) == 1
    socks[0].close()
    await asyncio.sleep(0.5)
    late = connect(server)
    await asyncio.sleep(0.5)
    assert received(late) == ([], False), "a closed connection frees its place"
    await server.stop()


async def test_a_caller_refused_too_often_is_told_to_slow_down_without_dispatch(tmp_path) -> None:
    dispatch = Recorder({"exit": 4, "outcome": "not_authorised", "message": "open needs role operator", "data": None})
    refusals = RefusalBudget(burst=5, per_s=1.0, clock=asyncio.get_running_loop().time)
    server = await started(tmp_path, dispatch, refusals=refusals)
    sock = connect(server)
    sock.send(b'{"command":"open","args":{"device":"gate-1"}}\n' * 12)
    await asyncio.sleep(0.5)
    replies, _ = received(sock)
    assert [r["exit"] for r in replies] == [4] * 5 + [1] * 7
    assert replies[-1]["message"].startswith("slow down")
    assert len(dispatch.requests) == 5
    await asyncio.sleep(2.0)
    sock.send(b'{"command":"open","args":{"device":"gate-1"}}\n' * 3)
    await asyncio.sleep(0.1)
    assert [r["exit"] for r in received(sock)[0]] == [4, 4, 1]
    await server.stop()


async def test_out_of_descriptors_the_accept_loop_logs_once_and_does_not_spin(tmp_path, monkeypatch) -> None:
    server = await started(tmp_path, Recorder())
    loop = asyncio.get_running_loop()
    real_accept = loop.sock_accept
    attempts = []

    async def emfile_for_ten_seconds(sock):
        attempts.append(loop.time())
        if loop.time() < 10.0:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return await real_accept(sock)

    monkeypatch.setattr(loop, "sock_accept", emfile_for_ten_seconds)
    with capture_logs() as logs:
        server._accepting.cancel()
        server._accepting = asyncio.create_task(server._accept_loop())
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(server.path))
        client.send(b'{"command":"status"}\n')
        await asyncio.sleep(12.0)
    client.setblocking(False)
    assert received(client)[0][0]["exit"] == 0, "accepted once descriptors were free again"
    assert len(attempts) <= 10.0 / control_socket.ACCEPT_RETRY_S + 3
    events = [e["event"] for e in logs]
    assert events.count("control_socket_cannot_accept") == 1
    assert events.count("control_socket_accepting_again") == 1
    await server.stop()
