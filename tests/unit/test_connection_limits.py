"""Unit: connection caps per uid and overall with room kept for root, and the refusal rate on a fake clock."""

from __future__ import annotations

from controller.connection_limits import ConnectionCaps, RefusalBudget

ROOT, DAEMON, NOBODY, GUARD = 0, 990, 65534, 1001


def test_one_uid_is_capped_and_others_still_get_in() -> None:
    caps = ConnectionCaps({ROOT, DAEMON}, per_uid=16, overall=200, privileged=32)
    admitted = [caps.admit(NOBODY) for _ in range(1100)]
    assert admitted[:16] == [None] * 16
    assert set(admitted[16:]) == {"too many connections from uid 65534 (at most 16)"}
    assert caps.open_count(NOBODY) == 16
    assert caps.admit(GUARD) is None


def test_the_overall_cap_never_takes_root_s_room() -> None:
    caps = ConnectionCaps({ROOT, DAEMON}, per_uid=16, overall=40, privileged=4)
    for uid in range(2000, 2010):
        for _ in range(4):
            assert caps.admit(uid) is None
    assert caps.admit(3000) == "too many connections (at most 40)"
    assert [caps.admit(ROOT) for _ in range(3)] + [caps.admit(DAEMON)] == [None] * 4
    assert caps.admit(ROOT) == "too many connections from privileged users (at most 4)"
    caps.release(2000)
    assert caps.admit(3000) is None


def test_released_connections_free_their_place() -> None:
    caps = ConnectionCaps({ROOT}, per_uid=2)
    assert caps.admit(GUARD) is None and caps.admit(GUARD) is None
    assert caps.admit(GUARD) is not None
    caps.release(GUARD)
    assert caps.admit(GUARD) is None
    caps.release(GUARD)
    caps.release(GUARD)
    assert caps.open_count(GUARD) == 0 and caps.unprivileged_open() == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_refused_past_the_burst_is_told_to_slow_down_until_the_bucket_refills() -> None:
    clock = FakeClock()
    budget = RefusalBudget(burst=20, per_s=1.0, clock=clock)
    for _ in range(20):
        assert not budget.exhausted(NOBODY)
        budget.refused(NOBODY)
    assert budget.exhausted(NOBODY)
    assert not budget.exhausted(GUARD), "one caller's refusals do not slow another"
    clock.now += 0.9
    assert budget.exhausted(NOBODY)
    clock.now += 0.1
    assert not budget.exhausted(NOBODY)
    budget.refused(NOBODY)
    assert budget.exhausted(NOBODY)
    clock.now += 60
    assert not budget.exhausted(NOBODY)
    for _ in range(20):
        budget.refused(NOBODY)
    assert budget.exhausted(NOBODY), "the bucket holds at most the burst, however long the caller waited"


def test_exempt_callers_are_never_slowed() -> None:
    budget = RefusalBudget(burst=2, per_s=0.1, clock=FakeClock(), exempt_uids=frozenset({ROOT}))
    for _ in range(100):
        budget.refused(ROOT)
    assert not budget.exhausted(ROOT)


def test_callers_whose_bucket_refilled_are_forgotten() -> None:
    clock = FakeClock()
    budget = RefusalBudget(burst=2, per_s=1.0, clock=clock)
    for uid in range(5000, 7000):
        budget.refused(uid)
    clock.now += 10
    budget.refused(1)
    assert len(budget._buckets) < 1100
