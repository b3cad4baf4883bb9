"""The one error type of the configuration layer."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem of an input script, at a key path."""

    path: str  # key path, e.g. "model/descriptor/neuron"; "" for the whole script
    message: str

    def line(self, source: str) -> str:
        """The problem as `file: key/path: message`."""
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """An input script that cannot be used: every problem names the file and the key path."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.line(source) for p in self.problems))
