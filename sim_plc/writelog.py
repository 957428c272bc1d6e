"""The record of every register write a Modbus client made: JSON lines on disk and a list in memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any


class WriteLog:
    """Append one JSON object per client write; flush each line so other processes can tail the file.

    Line format: {"t": unix time, "plc": name, "unit": unit id, "fc": 6 or 16, "address": first register,
    "values": [...], "result": "ok" | "exception <code>" | "silenced"}.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def record(
        self, plc: str, unit: int, fc: int, address: int, values: list[int], result: str
    ) -> dict[str, Any]:
        entry = {
            "t": time.time(),
            "plc": plc,
            "unit": unit,
            "fc": fc,
            "address": address,
            "values": [int(v) for v in values],
            "result": result,
        }
        self.entries.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._file.flush()
        return entry

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
