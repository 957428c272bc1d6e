"""The software PLC: plant physics, Modbus TCP server and fault injection (a serial RTU server can follow)."""

from sim_plc.clock import Clock, FakeClock, SystemClock
from sim_plc.errors import FaultError, ModbusError
from sim_plc.faults import FAULTS
from sim_plc.plant import SimPlc
from sim_plc.server import SimSite

__all__ = ["FAULTS", "Clock", "FakeClock", "FaultError", "ModbusError", "SimPlc", "SimSite", "SystemClock"]
