"""barrierd and barrierctl: devices, lanes, commands, control socket, event store."""
