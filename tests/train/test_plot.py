"""`dp plot` draws lcurve.out (as written by the trainer, restarts included) to a PNG."""
import subprocess
import sys

import numpy as np
import pytest

from deepmd_tebd.train.lcurve import LearningCurve, read_lcurve

NAMES = ["rmse", "rmse_e", "rmse_f"]


def write_lcurve(path):
    first = LearningCurve(str(path), NAMES, True, restart=False)
    for step in (0, 100, 200):
        first.write(step, {n: 1.0 / (step + 1) for n in NAMES},
                    {n: 2.0 / (step + 1) for n in NAMES}, 1e-3)
    first.close()
    again = LearningCurve(str(path), NAMES, True, restart=True)
    again.write(300, {n: 0.5 for n in NAMES}, {n: 0.6 for n in NAMES}, 1e-4)
    again.close()


def test_read_lcurve_skips_repeated_headers(tmp_path):
    path = tmp_path / "lcurve.out"
    write_lcurve(path)
    names, data = read_lcurve(str(path))
    assert names[:3] == ["step", "rmse_val", "rmse_trn"] and names[-1] == "lr"
    assert data[:, 0].tolist() == [0, 100, 200, 300]


def test_read_lcurve_takes_the_step_header_not_a_note_line_after_it(tmp_path):
    """DeePMD-kit 3.x writes a comment line after its header."""
    path = tmp_path / "lcurve.out"
    path.write_text("#  step      rmse_val    rmse_trn        lr\n"
                    "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"
                    "      0      1.0e+00      2.0e+00   1.0e-03\n")
    names, data = read_lcurve(str(path))
    assert names == ["step", "rmse_val", "rmse_trn", "lr"]
    assert data.tolist() == [[0.0, 1.0, 2.0, 1e-3]]


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "lcurve.out"
    write_lcurve(path)
    result = subprocess.run([sys.executable, "-m", "deepmd_tebd.cli", "plot", str(path), "-o",
                             str(tmp_path / "curve.png")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_lcurve_is_refused(tmp_path):
    (tmp_path / "lcurve.out").write_text("")
    with pytest.raises(ValueError, match="no learning curve"):
        read_lcurve(str(tmp_path / "lcurve.out"))


def test_plot_draws_the_whole_validation_curve_beside_the_lcurve(tmp_path):
    """valid.out beside lcurve.out: its rmse_e, rmse_f and sqrt(loss) join the panels."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepmd_tebd.train.lcurve_plot import plot_lcurve
    from deepmd_tebd.train.validation import ValidationCurve

    write_lcurve(tmp_path / "lcurve.out")
    curve = ValidationCurve(str(tmp_path / "valid.out"), restart=False)
    for step in (100, 200):
        curve.write(step, {"rmse_e": 0.1, "rmse_f": 0.2, "rmse_v": float("nan"), "loss": 0.09,
                           "loss_final": 0.04}, 1e-3)
    curve.close()
    drawn = []
    original = plt.Figure.savefig
    plt.Figure.savefig = lambda fig, *a, **k: drawn.append(fig)
    try:
        plot_lcurve(str(tmp_path / "lcurve.out"), str(tmp_path / "x.png"),
                    str(tmp_path / "valid.out"))
    finally:
        plt.Figure.savefig = original
    panels = {ax.get_title(): ax for ax in drawn[0].axes}
    for title, value in (("rmse", 0.3), ("rmse_e", 0.1), ("rmse_f", 0.2)):
        line = [ln for ln in panels[title].get_lines() if ln.get_label() == "whole validation"]
        assert len(line) == 1 and np.allclose(line[0].get_ydata(), value), title
    result = subprocess.run([sys.executable, "-m", "deepmd_tebd.cli", "plot",
                             str(tmp_path / "lcurve.out"), "-o", str(tmp_path / "curve.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
