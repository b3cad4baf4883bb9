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


def read_lcurve(path: str) -> tuple[list[str], np.ndarray]:
    """Column names and values of lcurve.out or valid.out, ours or DeePMD-kit's: the header is
    the comment line starting with "step" (the last one wins after a --restart; DeePMD-kit 3.x
    writes a note line after it)."""
    names, rows = None, []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                words = line[1:].split()
                if words[:1] == ["step"]:
                    names = words
            elif line.strip():
                rows.append([float(v) for v in line.split()])
    if names is None or not rows:
        raise ValueError(f"{path} holds no learning curve (expected a header and rows)")
    return names, np.array(rows)
