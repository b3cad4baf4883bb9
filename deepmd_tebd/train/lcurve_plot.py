"""The learning curve (lcurve.out) as a picture: one log-log panel per error, training and
validation, and the learning rate; drawn with matplotlib (imported when drawing, optional).
With a whole-validation file (valid.out, train/validation.py) its rmse_e/rmse_f/rmse_v and
sqrt(loss) (the lcurve's rmse) are drawn in the same panels as "whole validation"."""
from __future__ import annotations

import numpy as np

from .lcurve import read_lcurve


def plot_lcurve(lcurve: str, output: str, valid: str | None = None) -> None:
    """Draws the learning curve in the file `lcurve` (and the whole-validation curve in `valid`)
    to `output` (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("dp plot needs matplotlib: pip install matplotlib "
                         "(or the package's [plot] extra)") from None
    names, data = read_lcurve(lcurve, required=("step", "lr"))
    step = data[:, names.index("step")]
    errors = sorted({n.rsplit("_", 1)[0] for n in names if n.endswith(("_trn", "_val"))},
                    key=lambda n: [k.rsplit("_", 1)[0] for k in names].index(n))
    whole = _whole_columns(valid) if valid else {}
    fig, axes = plt.subplots(1, len(errors) + 1, figsize=(4 * (len(errors) + 1), 3.5))
    for ax, error in zip(axes, errors):
        for kind, style in (("trn", "-"), ("val", "--")):
            key = f"{error}_{kind}"
            if key in names:
                ax.loglog(np.maximum(step, 1), data[:, names.index(key)], style,
                          label="training" if kind == "trn" else "validation")
        if error in whole:
            ax.loglog(np.maximum(whole["step"], 1), whole[error], "o:", markersize=3,
                      label="whole validation")
        ax.set_xlabel("step")
        ax.set_title(error)
        ax.legend()
    axes[-1].semilogy(step, data[:, names.index("lr")])
    axes[-1].set_xlabel("step")
    axes[-1].set_title("learning rate")
    fig.tight_layout()
    fig.savefig(output, dpi=120)


def _whole_columns(path: str) -> dict:
    """step and the lcurve-named errors of a whole-validation file (rmse: sqrt(loss))."""
    names, data = read_lcurve(path, required=("step", "rmse_e", "rmse_f", "rmse_v", "loss"))
    columns = {name: data[:, names.index(name)] for name in ("step", "rmse_e", "rmse_f", "rmse_v")}
    columns["rmse"] = np.sqrt(data[:, names.index("loss")])
    return columns
