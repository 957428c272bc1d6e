"""The record of every register write a Modbus client made: JSON lines on disk and a list in memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

KEPT_IN_MEMORY = 100_000  # entries: between this and twice this many are kept in memory; the file keeps all


class WriteLog:
    """Append one JSON object per client write; flush() puts the lines written so far in the file.

    The servers call flush() before they send the answers to the requests they just served, so a
    process reading the file (tests, benchmarks) finds every write whose answer its client has seen,
    at one write to the file per batch of requests rather than per line.

    Line format: {"t": unix time, "plc": name, "unit": unit id, "fc": 6 or 16, "address": first register,
    "values": [...], "result": "ok" | "exception <code>" | "silenced"}.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._pending = False
        self._names: dict[str, str] = {}  # a PLC name as a JSON string, encoded once
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def record(
        self, plc: str, unit: int, fc: int, address: int, values: list[int], result: str
    ) -> dict[str, Any]:
        entry = {"t": time.time(), "plc": plc, "unit": unit, "fc": fc, "address": address,
                 "values": [int(v) for v in values], "result": result}
        self.entries.append(entry)
        if len(self.entries) > 2 * KEPT_IN_MEMORY:  # a long run (training, demo) keeps the recent ones only
            del self.entries[:KEPT_IN_MEMORY]
        if self._file is not None:
            name = self._names.get(plc) or self._names.setdefault(plc, json.dumps(plc))
            # the line json.dumps(entry, separators=(",", ":")) would give, formatted directly (ints and a
            # result of ASCII letters, digits and spaces need no escaping; a float's repr is its JSON)
            self._file.write(
                f'{{"t":{entry["t"]!r},"plc":{name},"unit":{int(unit)},"fc":{int(fc)},"address":{int(address)},'
                f'"values":[{",".join(map(str, entry["values"]))}],"result":"{result}"}}\n'
            )
            self._pending = True
        return entry

    def flush(self) -> None:
        """Write the lines recorded since the last flush to the file (one write)."""
        if self._pending and self._file is not None:
            self._file.flush()
        self._pending = False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
