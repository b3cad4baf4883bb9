"""`dp plot` draws lcurve.out (as written by the trainer, restarts included) to a PNG."""
import subprocess
import sys

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
