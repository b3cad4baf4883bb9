"""`dp plot lcurve.out [-o lcurve.png] [--valid valid.out]`: the learning curve as a picture, with
the whole-validation curve (train/lcurve_plot.py)."""
from __future__ import annotations


def run(lcurve: str, output: str = "lcurve.png", valid: str | None = None) -> int:
    """Draws the learning curve file `lcurve` to `output` (PNG; needs matplotlib), with the
    whole-validation file `valid` (default: valid.out beside `lcurve`, if there)."""
    from pathlib import Path

    from ..store.outputs import check_output
    from ..train.lcurve_plot import plot_lcurve

    beside = Path(lcurve).with_name("valid.out")
    if valid is None and beside.is_file():
        valid = str(beside)
    check_output(output, "the picture (-o)", inputs=(lcurve, valid))
    plot_lcurve(lcurve, output, valid)
    print(f"wrote {output}")
    return 0
