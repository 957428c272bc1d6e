"""The live page's mailbox: only the latest message is kept, and "nothing changed" never hides a status not yet sent."""

from __future__ import annotations

from controller.panel_live import ALIVE, _Client


def mailbox() -> _Client:
    return _Client(ws=None, allowed=lambda: True)  # offer() touches neither


def test_a_newer_status_replaces_one_not_yet_sent():
    client = mailbox()
    client.offer('{"type": "status", "n": 1}')
    client.offer('{"type": "status", "n": 2}')
    assert client.latest == '{"type": "status", "n": 2}' and client.ready.is_set()


def test_alive_never_replaces_a_status_the_page_has_not_been_sent():
    client = mailbox()
    client.offer('{"type": "status", "n": 1}')
    client.offer(ALIVE)
    assert client.latest == '{"type": "status", "n": 1}'


def test_alive_is_sent_when_nothing_is_pending():
    client = mailbox()
    client.offer(ALIVE)
    assert client.latest is ALIVE and client.ready.is_set()

