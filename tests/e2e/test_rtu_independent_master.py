"""An RTU master that is not pymodbus (minimalmodbus, over pyserial) reads the running sim-plc over the
virtual line: a second opinion on RTU framing, CRC and timing, and on the silence for unknown unit ids."""

from __future__ import annotations

import minimalmodbus
import pytest

from hal.profile import PROFILE_MAGIC, HeaderInput, Kind, SlotInput, slot_base
from tests.e2e.rtu_harness import RtuProcesses, rtu_site_copy

pytestmark = pytest.mark.e2e

FC_READ_INPUT = 4


@pytest.fixture
def line_and_sim(tmp_path):
    procs = RtuProcesses(tmp=tmp_path, site=rtu_site_copy(tmp_path))
    try:
        procs.start_vline()
        procs.start_sim()
        yield procs
    finally:
        procs.close()


def instrument(procs: RtuProcesses, unit: int) -> minimalmodbus.Instrument:
    inst = minimalmodbus.Instrument(str(procs.master_link), unit, mode=minimalmodbus.MODE_RTU,
                                    close_port_after_each_call=True)
    inst.serial.baudrate = procs.baud
    inst.serial.timeout = 0.3
    inst.clear_buffers_before_each_transaction = True
    return inst


def test_minimalmodbus_reads_the_magic_of_each_unit_and_gets_no_answer_from_an_unknown_one(line_and_sim):
    procs = line_and_sim
    for unit in (1, 2):
        inst = instrument(procs, unit)
        assert inst.read_register(HeaderInput.PROFILE_MAGIC, functioncode=FC_READ_INPUT) == PROFILE_MAGIC == 0x4250
        assert inst.read_register(HeaderInput.SLOT_COUNT, functioncode=FC_READ_INPUT) == 3
        assert inst.read_register(slot_base(1) + SlotInput.KIND, functioncode=FC_READ_INPUT) == Kind.ROAD_BLOCKER
    with pytest.raises(minimalmodbus.NoResponseError):  # silence, not an exception reply
        instrument(procs, 9).read_register(HeaderInput.PROFILE_MAGIC, functioncode=FC_READ_INPUT)
    with pytest.raises(minimalmodbus.IllegalRequestError):  # the addressed unit answers 0x02 for a bad address
        instrument(procs, 1).read_register(9000, functioncode=FC_READ_INPUT)
