"""Simulated condition on a fake clock: wear, cold oil and its heater, the EFO accumulator, leaks, noise."""

from __future__ import annotations

import math
import statistics

import pytest

from hal.profile import POSITION_OPEN, AckResult, Command, FaultCode, Kind, SlotInput, Status, slot_base
from sim_plc import hydraulics
from sim_plc.errors import FaultError
from sim_plc.testing import BLOCKER, GATE, MOVING, PlcRig, lane_rig

HOUR = 3600.0


def raise_lower(rig: PlcRig, slot: int, efo: bool = False) -> tuple[int, int]:
    """One raise (ordinary or EFO, then RESET) and one lower of a blocker; their LAST_TRAVEL_MS."""
    raised = rig.travel(slot, Command.EFO if efo else Command.CLOSE)
    if efo:
        assert rig.command(slot, Command.RESET) == AckResult.ACCEPTED
    return raised, rig.travel(slot, Command.OPEN)


# ---- wear ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "nominal_ms"), [(Kind.FOLDING_GATE, 3000), (Kind.BOOM_BARRIER, 2000),
                                                  (Kind.ROAD_BLOCKER, 6000)])
def test_wear_lengthens_the_travel_cycle_by_cycle(kind: Kind, nominal_ms: int) -> None:
    rig = PlcRig([kind])
    rig.plc.inject("wear", 0, code=5000)  # 0.5 % of the nominal travel per completed cycle
    times = [rig.travel(0, Command.OPEN if n % 2 == 0 else Command.CLOSE) for n in range(8)]
    assert times == [pytest.approx(nominal_ms * (1 + 0.005 * n), abs=1) for n in range(8)]
    assert rig.cycle_count(0) == 8


def test_wear_without_a_code_adds_0_2_percent_per_cycle_and_clearing_it_is_the_repair() -> None:
    rig = PlcRig([Kind.FOLDING_GATE])
    rig.plc.inject("wear", 0)
    for n in range(20):
        rig.travel(0, Command.OPEN if n % 2 == 0 else Command.CLOSE)
    assert rig.travel(0, Command.OPEN) == pytest.approx(3000 * 1.04, abs=1)
    rig.plc.inject("wear", 0, active=False)
    assert rig.travel(0, Command.CLOSE) == pytest.approx(3000, abs=1)


def test_motor_current_rises_with_wear() -> None:
    rig = PlcRig([Kind.FOLDING_GATE])

    def running_current() -> int:
        rig.command(0, Command.OPEN if rig.has(0, Status.AT_CLOSED) else Command.CLOSE)
        rig.step()
        current = rig.reg(0, SlotInput.ANALOG_1)
        rig.run_until(lambda: not rig.status(0) & MOVING, 10.0)
        return current

    healthy = running_current()
    rig.plc.inject("wear", 0, code=10_000)  # 1 % per cycle
    for _ in range(30):
        rig.travel(0, Command.OPEN if rig.has(0, Status.AT_CLOSED) else Command.CLOSE)
    worn = running_current()
    assert healthy == 42
    assert worn == round(42 * 1.30)
    assert rig.reg(0, SlotInput.ANALOG_1) == 0  # stopped: no current


def test_a_worn_drive_ends_in_the_max_run_fault() -> None:
    rig = PlcRig([Kind.BOOM_BARRIER])
    rig.plc.inject("wear", 0, code=100_000)  # 10 % per cycle: more than twice the travel time after 11
    for n in range(11):
        rig.travel(0, Command.OPEN if n % 2 == 0 else Command.CLOSE)
    rig.command(0, Command.CLOSE)  # the twelfth travel
    took = rig.run_until(lambda: not rig.status(0) & MOVING, 10.0)
    assert took == pytest.approx(2 * 2.0, abs=0.02)
    assert rig.has(0, Status.DRIVE_FAULT)
    assert rig.reg(0, SlotInput.FAULT_CODE) == FaultCode.MAX_RUN_EXCEEDED


# ---- oil ----------------------------------------------------------------------------------------


def test_default_ambient_keeps_the_oil_warm_and_the_travel_nominal() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.soak(24 * HOUR, step_s=10.0)
    assert rig.oil_c(BLOCKER) == pytest.approx(hydraulics.AMBIENT_DEFAULT_C)
    assert not rig.plc.slots[BLOCKER].condition.oil.heater_on
    assert not rig.has(BLOCKER, Status.OIL_TEMP)
    assert raise_lower(rig, BLOCKER) == (6000, 6000)


def test_oil_follows_the_ambient_with_its_time_constant() -> None:
    rig = lane_rig()
    rig.plc.inject("heater_fault", BLOCKER)
    rig.plc.inject("ambient", BLOCKER, code=-200)
    rig.soak(hydraulics.OIL_TIME_CONSTANT_S, step_s=5.0)
    assert rig.oil_c(BLOCKER) == pytest.approx(-20 + 40 * math.exp(-1), abs=0.1)  # 63 % of the way
    rig.soak(5 * hydraulics.OIL_TIME_CONSTANT_S, step_s=5.0)
    assert rig.oil_c(BLOCKER) == pytest.approx(-20, abs=0.3)


def test_cold_oil_slows_ordinary_and_efo_travel_and_sets_oil_temp() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.plc.inject("heater_fault", BLOCKER)
    rig.plc.inject("ambient", BLOCKER, code=-200)
    rig.soak(12 * HOUR, step_s=10.0)
    oil = rig.oil_c(BLOCKER)
    assert oil == pytest.approx(-20, abs=0.2)
    assert rig.has(BLOCKER, Status.OIL_TEMP)
    factor = 1 + hydraulics.SLOWDOWN_PER_C * (hydraulics.OIL_FULL_SPEED_C - oil)
    raised, lowered = raise_lower(rig, BLOCKER)
    assert raised == lowered == pytest.approx(6000 * factor, rel=0.002)
    efo, _ = raise_lower(rig, BLOCKER, efo=True)
    assert efo == pytest.approx(1500 * factor, rel=0.002)
    assert efo > 2500  # this cold, the blocker misses its emergency raise time
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.NONE  # OIL_TEMP is a warning, not a fault


def test_the_heater_warms_cold_oil_back_and_holds_it() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.plc.inject("heater_fault", BLOCKER)
    rig.plc.inject("ambient", BLOCKER, code=-200)
    rig.soak(12 * HOUR, step_s=10.0)
    cold, _ = raise_lower(rig, BLOCKER)
    rig.plc.inject("heater_fault", BLOCKER, active=False)
    start = rig.oil_c(BLOCKER)
    rig.soak(600, step_s=1.0)
    rate_per_hour = (rig.oil_c(BLOCKER) - start) / (600 / HOUR)
    assert 20 < rate_per_hour < 30  # the heater's 30 °C/h less what the cold air takes
    heater_seen = set()
    for _ in range(4 * 360):  # four hours
        rig.soak(10.0, step_s=10.0)
        heater_seen.add(rig.plc.slots[BLOCKER].condition.oil.heater_on)
    assert heater_seen == {True, False}  # the thermostat cycles
    assert hydraulics.HEATER_ON_BELOW_C - 0.5 <= rig.oil_c(BLOCKER) <= hydraulics.HEATER_OFF_ABOVE_C + 0.5
    assert not rig.has(BLOCKER, Status.OIL_TEMP)
    warm, _ = raise_lower(rig, BLOCKER)
    assert warm < 6000 * 1.11 < cold


def test_the_oil_temp_override_reads_and_acts_as_injected() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.plc.inject("oil_temp", BLOCKER, code=50)  # 5.0 °C: in range, but thick
    rig.step()
    assert rig.oil_c(BLOCKER) == 5.0
    assert not rig.has(BLOCKER, Status.OIL_TEMP)
    assert raise_lower(rig, BLOCKER)[0] == pytest.approx(6000 * 1.2, abs=1)
    rig.plc.inject("oil_temp", BLOCKER, active=False)
    rig.step()
    assert rig.oil_c(BLOCKER) == hydraulics.AMBIENT_DEFAULT_C  # the model underneath takes over


# ---- accumulator --------------------------------------------------------------------------------


def test_an_efo_raise_draws_the_accumulator_and_the_pump_recharges_it_at_its_rate() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    assert rig.pressure_bar(BLOCKER) == hydraulics.NOMINAL_BAR
    assert rig.travel(BLOCKER, Command.EFO) == 1500
    # 35 bar drawn over the raise; the pump starts at 150 bar, 10/35 of the way, and adds its share
    pump_s = 1.5 * (1 - (hydraulics.NOMINAL_BAR - hydraulics.PUMP_CUT_IN_BAR) / hydraulics.EFO_DRAW_BAR)
    after = hydraulics.NOMINAL_BAR - hydraulics.EFO_DRAW_BAR + hydraulics.PUMP_RATE_BAR_S * pump_s
    assert rig.pressure_bar(BLOCKER) == pytest.approx(after, abs=0.3)
    before = rig.pressure_bar(BLOCKER)
    rig.run(4.0)
    assert rig.pressure_bar(BLOCKER) - before == pytest.approx(4.0 * hydraulics.PUMP_RATE_BAR_S, abs=0.2)
    rig.run(20.0)
    assert rig.pressure_bar(BLOCKER) == hydraulics.NOMINAL_BAR
    assert not rig.plc.slots[BLOCKER].condition.accumulator.pump_on


def test_ordinary_travel_draws_a_little_and_the_pump_starts_at_its_cut_in() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    pressures = []
    for n in range(5):
        rig.travel(BLOCKER, Command.CLOSE if n % 2 == 0 else Command.OPEN)
        pressures.append(rig.pressure_bar(BLOCKER))
    assert pressures == [pytest.approx(160 - 2 * (n + 1), abs=0.05) for n in range(5)]
    assert not rig.plc.slots[BLOCKER].condition.accumulator.pump_on  # not below 150 bar yet
    rig.command(BLOCKER, Command.OPEN)
    rig.run(1.0)  # a sixth travel draws it below the cut-in: the pump runs, +2.5 bar/s against -1/3 bar/s
    assert rig.plc.slots[BLOCKER].condition.accumulator.pump_on
    assert rig.pressure_bar(BLOCKER) == pytest.approx(150 + hydraulics.PUMP_RATE_BAR_S - 2 / 6, abs=0.1)


def test_a_small_leak_decays_the_idle_pressure_and_the_pump_makes_up_for_it() -> None:
    rig = lane_rig()
    rig.plc.inject("leak", BLOCKER, code=1000)  # 1 bar/s
    rig.run(5.0)
    assert rig.pressure_bar(BLOCKER) == pytest.approx(155, abs=0.1)
    seen = _pressures(rig, 120.0)
    assert hydraulics.PUMP_CUT_IN_BAR - 0.6 <= min(seen)  # the switch acts on the next 0.5 s scan
    assert max(seen[-40:]) > 158  # ... and the pump brings it back up
    assert not rig.has(BLOCKER, Status.LOW_PRESSURE)


def _pressures(rig: PlcRig, seconds: float) -> list[float]:
    seen = []
    for _ in range(round(seconds / 0.5)):
        rig.soak(0.5, step_s=0.5)
        seen.append(rig.pressure_bar(BLOCKER))
    return seen


def test_a_leak_beyond_the_pump_sets_low_pressure_and_fault_4_until_recharged_and_reset() -> None:
    rig = lane_rig()
    rig.plc.inject("leak", BLOCKER, code=4000)  # 4 bar/s against the pump's 2.5
    took = rig.run_until(lambda: rig.has(BLOCKER, Status.LOW_PRESSURE), 60.0)
    # 160 → 150 at 4 bar/s, then 150 → 100 at 1.5 bar/s
    assert took == pytest.approx(10 / 4 + 50 / 1.5, abs=0.1)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.LOW_PRESSURE
    assert not rig.has(BLOCKER, Status.DRIVE_FAULT)
    rig.plc.inject("leak", BLOCKER, active=False)
    assert rig.command(BLOCKER, Command.RESET) == AckResult.ACCEPTED
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.LOW_PRESSURE  # the cause is still there
    rig.run_until(lambda: not rig.has(BLOCKER, Status.LOW_PRESSURE), 5.0)
    rig.command(BLOCKER, Command.RESET)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.NONE


def test_an_efo_below_the_minimum_pressure_is_slower_but_still_accepted() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.plc.inject("low_pressure", BLOCKER, code=900)  # 90 bar: a quarter of the way to the precharge
    rig.step()
    assert rig.has(BLOCKER, Status.LOW_PRESSURE)
    assert rig.command(BLOCKER, Command.EFO) == AckResult.ACCEPTED
    rig.run_until(lambda: not rig.status(BLOCKER) & MOVING, 5.0)
    pump_only = 6.0 / 1.5
    assert rig.reg(BLOCKER, SlotInput.LAST_TRAVEL_MS) == pytest.approx(1500 * (1 + (pump_only - 1) / 4), abs=1)
    assert rig.has(BLOCKER, Status.AT_CLOSED | Status.EFO_ACTIVE)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.LOW_PRESSURE


def test_an_efo_on_an_empty_accumulator_stops_on_max_run_with_fault_4_first_out() -> None:
    rig = lane_rig(blocker=POSITION_OPEN)
    rig.plc.inject("low_pressure", BLOCKER)  # 60 bar: the pump alone, the ordinary 6 s
    rig.step()
    assert rig.command(BLOCKER, Command.EFO) == AckResult.ACCEPTED
    took = rig.run_until(lambda: not rig.status(BLOCKER) & MOVING, 5.0)
    assert took == pytest.approx(2 * 1.5, abs=0.02)  # twice the EFO time: the profile's max run
    assert rig.position(BLOCKER) == pytest.approx(500, abs=3)
    assert rig.has(BLOCKER, Status.DRIVE_FAULT | Status.LOW_PRESSURE)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.LOW_PRESSURE


# ---- noise and health ---------------------------------------------------------------------------


def _noisy_travels(rig: PlcRig, count: int) -> list[int]:
    return [rig.travel(GATE, Command.OPEN if n % 2 == 0 else Command.CLOSE) for n in range(count)]


def test_noise_is_seeded_per_plc_and_slot_and_replays_on_each_injection() -> None:
    first, second = lane_rig(), lane_rig()
    for rig in (first, second):
        rig.plc.inject("noise", GATE)
    sequence = _noisy_travels(first, 10)
    assert _noisy_travels(second, 10) == sequence
    assert len(set(sequence)) > 5
    first.plc.inject("noise", GATE, active=False)
    first.plc.inject("noise", GATE)
    assert _noisy_travels(first, 10) == sequence  # back at the closed limit: the same ten again
    slower_scan = PlcRig([Kind.FOLDING_GATE], scan_ms=50)  # same PLC name and slot, another scan rate
    slower_scan.plc.inject("noise", 0)
    again = [slower_scan.travel(0, Command.OPEN if n % 2 == 0 else Command.CLOSE) for n in range(10)]
    assert again == [pytest.approx(t, abs=1) for t in sequence]
    blocker = lane_rig(blocker=POSITION_OPEN)
    blocker.plc.inject("noise", BLOCKER)
    assert [blocker.travel(BLOCKER, Command.CLOSE if n % 2 == 0 else Command.OPEN) / 2 for n in range(10)] != \
        sequence  # another slot, another sequence


def test_noise_reaches_the_analogs_within_a_few_counts() -> None:
    rig = lane_rig()
    rig.plc.inject("noise", BLOCKER)
    pressures, oils = set(), set()
    for _ in range(200):
        rig.step()
        pressures.add(rig.reg(BLOCKER, SlotInput.ANALOG_1))
        oils.add(rig.reg(BLOCKER, SlotInput.ANALOG_2))
    assert len(pressures) > 10 and len(oils) > 3
    assert max(abs(p - 1600) for p in pressures) <= 20  # 4 σ of 0.5 bar
    assert max(abs(o - 200) for o in oils) <= 4


def test_healthy_defaults_with_noise_stay_within_2_5_percent_over_1000_cycles() -> None:
    """What a monitor's false-alarm test runs on: a healthy gate, blocker and boom, noise on, 1,000
    travels each (every tenth raise of the blocker an EFO), no alarm bit, no fault, no drift."""
    nominal = {0: 3000, 1: 6000, 2: 2000}
    # a 200 ms scan: arrival times are interpolated within the scan, so LAST_TRAVEL_MS stays exact
    rig = PlcRig([Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.BOOM_BARRIER], scan_ms=200)
    for slot in nominal:
        rig.plc.inject("noise", slot)
    travels: dict[int, list[int]] = {slot: [] for slot in nominal}
    efo: list[int] = []
    counted = dict.fromkeys(nominal, 0)
    raises = 0
    alarm_bits = int(Status.DRIVE_FAULT | Status.LOW_PRESSURE | Status.OIL_TEMP)
    lowest_bar = hydraulics.NOMINAL_BAR
    while min(len(t) for t in travels.values()) < 1000:
        image = rig.plc.read_input(0, rig.plc.input_size)
        for slot in nominal:
            word = slot_base(slot)
            status = image[word + SlotInput.STATUS]
            assert not status & alarm_bits and not image[word + SlotInput.FAULT_CODE], (slot, status)
            if status & MOVING:
                continue
            count = image[word + SlotInput.CYCLE_COUNT + 1]
            if count != counted[slot]:
                counted[slot] = count
                last = image[word + SlotInput.LAST_TRAVEL_MS]
                if status & Status.EFO_ACTIVE:
                    efo.append(last)
                    assert rig.command(slot, Command.RESET) == AckResult.ACCEPTED
                else:
                    travels[slot].append(last)
            if status & Status.AT_CLOSED:
                rig.command(slot, Command.OPEN)
            elif slot == BLOCKER:
                raises += 1
                rig.command(slot, Command.EFO if raises % 10 == 0 else Command.CLOSE)
            else:
                rig.command(slot, Command.CLOSE)
        lowest_bar = min(lowest_bar, image[slot_base(BLOCKER) + SlotInput.ANALOG_1] / 10)
        rig.step()
    for slot, times in travels.items():
        deviations = [t / nominal[slot] - 1 for t in times[:1000]]
        assert max(abs(d) for d in deviations) <= 0.025, slot
        assert abs(statistics.mean(deviations)) <= 0.001, slot  # no drift
        assert 0.004 <= statistics.stdev(deviations) <= 0.006, slot  # the noise is there
    assert len(efo) >= 40 and all(abs(t / 1500 - 1) <= 0.025 for t in efo)
    assert lowest_bar > hydraulics.MINIMUM_BAR + 10
    assert hydraulics.OIL_WORKING_RANGE_C[0] < rig.oil_c(BLOCKER) < hydraulics.OIL_WORKING_RANGE_C[1]


# ---- injection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "slot", "code", "message"),
    [
        ("ambient", GATE, None, "road_blocker"),
        ("leak", GATE, 100, "road_blocker"),
        ("heater_fault", BLOCKER, 3, "takes no code"),
        ("wear", GATE, 0, "outside"),
        ("noise", BLOCKER, 5000, "outside"),
        ("ambient", BLOCKER, -700, "outside"),
        ("wear", 2, None, "traffic_signal"),
    ],
)
def test_condition_inputs_are_refused_where_they_cannot_apply(
    fault: str, slot: int, code: int | None, message: str
) -> None:
    rig = lane_rig()
    with pytest.raises(FaultError, match=message):
        rig.plc.inject(fault, slot, code=code)
    assert rig.plc.active_faults() == []


def test_condition_inputs_are_listed_with_their_values() -> None:
    rig = lane_rig()
    rig.plc.inject("wear", GATE, code=2500)
    rig.plc.inject("ambient", BLOCKER, code=-150)
    assert rig.plc.active_faults() == [
        {"plc": "test-plc", "fault": "wear", "slot": GATE, "code": 2500},
        {"plc": "test-plc", "fault": "ambient", "slot": BLOCKER, "code": -150},
    ]
