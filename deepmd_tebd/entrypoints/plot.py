"""`dp plot lcurve.out [-o lcurve.png]`: the learning curve as a picture (train/lcurve_plot.py)."""
from __future__ import annotations


def run(lcurve: str, output: str = "lcurve.png") -> int:
    """Draws the learning curve file `lcurve` to `output` (PNG; needs matplotlib)."""
    from ..train.lcurve_plot import plot_lcurve

    plot_lcurve(lcurve, output)
    print(f"wrote {output}")
    return 0
