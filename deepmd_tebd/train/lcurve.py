"""The learning curve file (lcurve.out) in DeePMD-kit's exact format.

Header: "# %5s" % "step", then per error name "   %11s %11s" % (name_val, name_trn) (only
"   %11s" % name_trn without validation data), then "   %8s" % "lr". Rows: "%7d" step, the
errors as "   %11.2e %11.2e" (or "   %11.2e"), then "   %8.1e" lr.
"""
from __future__ import annotations


def header(names: list[str], with_validation: bool) -> str:
    line = "# %5s" % "step"
    for name in names:
        line += ("   %11s %11s" % (name + "_val", name + "_trn") if with_validation
                 else "   %11s" % (name + "_trn"))
    return line + "   %8s" % "lr" + "\n"


def row(step: int, train: dict, valid: dict | None, names: list[str], lr: float) -> str:
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
        self.file.write(row(step, train, valid if self.with_validation else None, self.names, lr))
        self.file.flush()

    def close(self) -> None:
        self.file.close()
