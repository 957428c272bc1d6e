"""One timer for the callbacks due at the same loop time: the quiet polls of every TCP PLC of a site on one grid."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Ticker:
    """Callbacks at loop times; those due at the same time run from one timer, in the order they were set."""

    def __init__(self) -> None:
        self._due: dict[float, list[Callable[[], None]]] = {}

    def at(self, when: float, callback: Callable[[], None]) -> list[Callable[[], None]]:
        """Run `callback` at `when`; the list returned is its batch, from which cancel() takes it."""
        batch = self._due.get(when)
        if batch is None:
            batch = self._due[when] = []
            asyncio.get_running_loop().call_at(when, self._run, when)
        batch.append(callback)
        return batch

    @staticmethod
    def cancel(batch: list[Callable[[], None]], callback: Callable[[], None]) -> None:
        if callback in batch:
            batch.remove(callback)

    def _run(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        for callback in self._due.pop(when):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - one PLC's error must not keep the others' polls from going out
                loop.call_exception_handler({"message": "ticker callback failed", "exception": exc})
