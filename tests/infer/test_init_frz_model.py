"""`dp train --init-frz-model graph.pb`: the weights and statistics of a frozen model (ours or
DeePMD-kit's) start the training; zero steps and `dp freeze` give back the same model. DeePMD-kit's
own `dp train --init-frz-model` accepts our graph. A compressed graph is refused with the reason."""
import json
import shutil

import numpy as np
import pytest
from conftest import dp, make_workdir, oracle_dp, water_frames, water_input

from deepmd_tebd.infer.deep_pot import DeepPot


def _workdir(tmp_path, numb_steps):
    script = water_input("water_se_e2_a.json", numb_steps=numb_steps, small=True)
    script["training"]["disp_freq"] = 1
    return make_workdir(tmp_path, script)


@pytest.mark.parametrize("which", ["plain_graph", "theirs_plain_graph"])
def test_zero_steps_from_a_frozen_model_freeze_to_the_same_model(which, request, tmp_path):
    graph = request.getfixturevalue(which)
    run = _workdir(tmp_path, 0)
    result = dp(run, "train", "input.json", "--init-frz-model", str(graph))
    assert result.returncode == 0, result.stderr[-3000:]
    assert dp(run, "freeze", "-o", "again.pb").returncode == 0
    coords, cells, types = water_frames(2)
    for a, b in zip(DeepPot(run / "again.pb").eval(coords, cells, types),
                    DeepPot(graph).eval(coords, cells, types)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_deepmd_kit_trains_from_our_frozen_model(plain_graph, tmp_path):
    run = _workdir(tmp_path, 1)
    result = oracle_dp(run, "--tf", "train", "input.json", "--init-frz-model", str(plain_graph))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = np.loadtxt(run / "lcurve.out")
    assert rows.shape[0] == 2 and np.all(np.isfinite(rows))


def test_a_compressed_graph_is_refused_with_the_reason(ours_compressed_graph, tmp_path):
    run = _workdir(tmp_path, 1)
    result = dp(run, "train", "input.json", "--init-frz-model", str(ours_compressed_graph))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "compressed model" in result.stderr
