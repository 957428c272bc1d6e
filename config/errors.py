"""ConfigError: a site file refused, every problem as (TOML key, reason); raised and read without pydantic."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A site configuration that must not be started; the message names file and key."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {key}: {why}" for key, why in problems]
        super().__init__("\n".join(lines))
