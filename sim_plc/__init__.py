"""The software PLC: plant physics, Modbus server over TCP and serial, fault injection."""
