"""Hardware abstraction: the PLC profile as data, Modbus transports, reply validation and bus scheduling."""
