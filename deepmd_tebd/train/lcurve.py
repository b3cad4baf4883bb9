"""The learning curve file (lcurve.out) in DeePMD-kit's exact format: written during training,
read back for `dp plot`.

Header: "# %5s" % "step", then per error name "   %11s %11s" % (name_val, name_trn) (only
"   %11s" % name_trn without validation data), then "   %8s" % "lr". Rows: "%7d" step, the
errors as "   %11.2e %11.2e" (or "   %11.2e"), then "   %8.1e" lr (DeePMD-kit's
`deepmd/tf/train/trainer.py: DPTrainer.print_header, print_on_training`).
"""
from __future__ import annotations

import numpy as np


def header(names: list[str], with_validation: bool) -> str:
    """The header line naming the columns."""
    line = "# %5s" % "step"
    for name in names:
        line += ("   %11s %11s" % (name + "_val", name + "_trn") if with_validation
                 else "   %11s" % (name + "_trn"))
    return line + "   %8s" % "lr" + "\n"


def row(step: int, train: dict, valid: dict | None, names: list[str], lr: float) -> str:
    """One row: the step, the errors (validation first) and the learning rate."""
    line = "%7d" % step
    for name in names:
        line += ("   %11.2e %11.2e" % (valid[name], train[name]) if valid is not None
                 else "   %11.2e" % train[name])
    return line + "   %8.1e" % lr + "\n"


class LearningCurve:
    """lcurve.out: truncated at the start of training, appended to on --restart (with a new
    header), flushed after every row."""

    def __init__(self, path: str, names: list[str], with_validation: bool, restart: bool):
        self.names = names
        self.with_validation = with_validation
        self.file = open(path, "a" if restart else "w")
        self.file.write(header(names, with_validation))
        self.file.flush()

    def write(self, step: int, train: dict, valid: dict | None, lr: float) -> None:
        """Appends the row of `step` and flushes it."""
        self.file.write(row(step, train, valid if self.with_validation else None, self.names, lr))
        self.file.flush()

    def close(self) -> None:
        """Closes the file."""
        self.file.close()


class LcurveError(ValueError):
    """A learning-curve file that cannot be read; the message names the file and the line."""


def read_lcurve(path: str, required: tuple = ("step",)) -> tuple[list[str], np.ndarray]:
    """Column names and values of lcurve.out or valid.out, ours or DeePMD-kit's: the header is
    the comment line starting with "step" (the last one wins after a --restart; DeePMD-kit 3.x
    writes a note line after it). LcurveError when it cannot be read, a row is not as many
    numbers as the header names, or a column of `required` is missing."""
    names, rows = None, []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if line.startswith("#"):
                    words = line[1:].split()
                    if words[:1] == ["step"]:
                        names = words
                elif line.strip():
                    rows.append(_row(path, number, line, names))
    except (OSError, UnicodeDecodeError) as err:
        raise LcurveError(f"{path}: cannot be read: {getattr(err, 'strerror', None) or err}") \
            from None
    if names is None or not rows:
        raise LcurveError(f"{path} holds no learning curve (expected a header and rows)")
    missing = [name for name in required if name not in names]
    if missing:
        raise LcurveError(f"{path}: the header names no column {', '.join(missing)}; it has "
                          f"{' '.join(names)}")
    return names, np.array(rows)


def _row(path: str, number: int, line: str, names: list[str] | None) -> list[float]:
    if names is None:
        raise LcurveError(f"{path}: line {number}: a row before the header line '# step ...'")
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        raise LcurveError(f"{path}: line {number}: expected numbers, got {line.strip()[:60]!r}") \
            from None
    if len(values) != len(names):
        raise LcurveError(f"{path}: line {number}: {len(values)} values, but the header names "
                          f"{len(names)} columns")
    return values
