"""`dp train --init-frz-model graph.pb`: the weights and statistics of a frozen model (ours or
DeePMD-kit's) start the training; zero steps and `dp freeze` give back the same model. DeePMD-kit's
own `dp train --init-frz-model` accepts our graph and starts from the model we start from (the
same step-0 lcurve row on a one-frame system, which both programs' data generators must draw).
Compressed graphs: test_init_frz_compressed.py."""

import numpy as np
import pytest
from conftest import dp, make_workdir, one_frame_system, oracle_dp, water_frames, water_input

from deepmd_tebd.infer.deep_pot import DeepPot
from deepmd_tebd.train.lcurve import read_lcurve

pytestmark = pytest.mark.slow


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


def test_deepmd_kit_starts_from_our_frozen_model_where_we_start(plain_graph, tmp_path):
    system = one_frame_system(tmp_path / "one_frame")
    rows = {}
    for side, runner, argv in (("ours", dp, ["train"]), ("theirs", oracle_dp, ["--tf", "train"])):
        script = water_input("water_se_e2_a.json", numb_steps=1, small=True)
        script["training"]["disp_freq"] = 1
        script["training"]["training_data"].update(systems=[str(system)], batch_size=1)
        script["training"]["validation_data"].update(systems=[str(system)], batch_size=1,
                                                      numb_btch=1)
        run = make_workdir(tmp_path / side, script)
        result = runner(run, *argv, "input.json", "--init-frz-model", str(plain_graph))
        assert result.returncode == 0, result.stderr[-3000:]
        names, data = read_lcurve(str(run / "lcurve.out"))
        rows[side] = dict(zip(names, data[0]))
    common = rows["ours"].keys() & rows["theirs"].keys()
    assert {"rmse_e_val", "rmse_e_trn", "rmse_f_val", "rmse_f_trn", "lr"} <= common
    assert {k: rows["ours"][k] for k in common} == {k: rows["theirs"][k] for k in common}
