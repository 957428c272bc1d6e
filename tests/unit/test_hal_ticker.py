"""hal.ticker: callbacks due at one loop time run from one timer, in order; one cancelled or failing spares the rest."""

from __future__ import annotations

import asyncio

import pytest

from hal.ticker import Ticker


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_callbacks_due_together_share_one_timer_and_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counted(when, callback, *args, **kwargs):
        if getattr(callback, "__self__", None) is ticker:
            timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    ticker, ran = Ticker(), []
    monkeypatch.setattr(loop, "call_at", counted)
    start = loop.time()
    for name in "abc":
        ticker.at(start + 0.1, lambda name=name: ran.append((name, loop.time() - start)))
    ticker.at(start + 0.2, lambda: ran.append(("d", loop.time() - start)))
    batch = ticker.at(start + 0.2, dropped := lambda: ran.append(("dropped", 0.0)))
    ticker.cancel(batch, dropped)
    await asyncio.sleep(0.3)
    assert [name for name, _ in ran] == ["a", "b", "c", "d"]
    assert [round(t, 3) for _, t in ran] == [0.1, 0.1, 0.1, 0.2]
    assert len(timers) == 2


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_failing_callback_is_reported_and_the_others_of_its_time_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported, ran = [], []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    ticker = Ticker()

    def fails() -> None:
        raise RuntimeError("one PLC's poll failed")

    ticker.at(loop.time() + 0.1, fails)
    ticker.at(loop.time() + 0.1, lambda: ran.append("next"))
    await asyncio.sleep(0.2)
    loop.set_exception_handler(None)
    assert ran == ["next"] and [str(e) for e in reported] == ["one PLC's poll failed"]
