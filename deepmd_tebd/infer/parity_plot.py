"""`dp test`'s parity plot: predicted against reference energy per atom and force components,
with the RMSE of each, drawn with matplotlib (imported when drawing, optional)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_parity_plot(results: list[dict], path: Path) -> str | None:
    """Draws predicted against reference energies per atom and force components of the systems
    to `path` (PNG); returns the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    data_e = np.concatenate([r["_parity"][0] for r in results])
    pred_e = np.concatenate([r["_parity"][1] for r in results])
    data_f = np.concatenate([r["_parity"][2] for r in results])
    pred_f = np.concatenate([r["_parity"][3] for r in results])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, x, y, what in ((axes[0], data_e, pred_e, "energy / atom (eV)"),
                           (axes[1], data_f, pred_f, "force component (eV/A)")):
        ax.scatter(x, y, s=4, alpha=0.5)
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        rmse = float(np.sqrt(np.mean((y - x) ** 2)))
        ax.set_xlabel(f"reference {what}")
        ax.set_ylabel(f"predicted {what}")
        ax.set_title(f"RMSE {rmse:.3e}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
