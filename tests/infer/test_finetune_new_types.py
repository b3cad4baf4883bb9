"""`dp train --finetune` with types the pretrained model lacks (train/finetune.py: new types): a
small se_atten_v2 model pretrained on water (O, H) and fine-tuned with a type map adding C, on
water frames where some H atoms are relabelled C. Before training the extended model predicts
for water what the pretrained one did (1e-12; energies up to the re-fitted bias of the old types
the user names); training moves those predictions. A checkpoint of ours fine-tunes as its frozen
graph does. Data of a type the model lacks without a type map that adds it is refused."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import dp, water_frames
from shared_paths import WATER, needs_water
from test_finetune import BIAS, _constants, _frames, _run, _script

from deepmd_tebd.infer import DeepPot

pytestmark = [needs_water, pytest.mark.slow]
OURS = (dp, ["train"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """{"graph", "checkpoint"}: 4 steps of the small se_atten_v2 model, types O and H (a
    seeded type embedding: the new types' rows are the same in every fine-tuning)."""
    root = tmp_path_factory.mktemp("pretrained")
    script = _script([WATER / "data_0"], ["O", "H"])
    script["model"]["type_embedding"] = {"neuron": [8], "seed": 1}
    graph = _run(dp, ["train"], root / "run", script)
    return {"graph": graph, "checkpoint": root / "run" / "model.ckpt"}


@pytest.fixture(scope="module")
def with_carbon(tmp_path_factory):
    """Four water frames, every third H relabelled C (types O, H, C)."""
    root = _frames(tmp_path_factory.mktemp("carbon") / "frames")
    types = np.loadtxt(root / "type.raw", dtype=int)
    hydrogens = np.flatnonzero(types == 1)
    types[hydrogens[::3]] = 2
    np.savetxt(root / "type.raw", types, fmt="%d")
    (root / "type_map.raw").write_text("O\nH\nC\n")
    return root


def _tuned(tmp_path, data, type_map, source, steps=0):
    script = _script([data], type_map, steps=steps)
    return _run(dp, ["train"], tmp_path, script, "--finetune", str(source))


def _water(graph):
    coords, cells, types = water_frames(2)
    return DeepPot(graph).eval(coords, cells, types)[:3], np.bincount(types, minlength=2)


def test_new_types_leave_the_old_types_predictions_as_they_were(pretrained, with_carbon,
                                                                tmp_path):
    before, _ = _water(pretrained["graph"])
    # only C named: the old types keep their bias, so the energies too
    only_new = _tuned(tmp_path / "only_new", with_carbon, ["C"], pretrained["graph"])
    after, _ = _water(only_new)
    for a, b in zip(after, before):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(1.0, np.abs(b).max()))
    bias, old = _constants(only_new)[BIAS], _constants(pretrained["graph"])[BIAS]
    assert bias.shape == (3,) and np.array_equal(bias[:2], old) and bias[2] != 0
    out = json.loads((tmp_path / "only_new" / "out.json").read_text())["model"]
    assert out["type_map"] == ["O", "H", "C"]
    # all three named: the old types' bias is re-fitted; forces and virials stay, energies move
    # by the atom counts times the bias change
    every = _tuned(tmp_path / "every", with_carbon, ["O", "H", "C"], pretrained["graph"])
    (energy, force, virial), counts = _water(every)
    change = _constants(every)[BIAS][:2] - old
    assert np.abs(change).max() > 1e-6
    np.testing.assert_allclose(energy.ravel(), before[0].ravel() + counts @ change, rtol=1e-12)
    np.testing.assert_allclose(force, before[1], rtol=0, atol=1e-12 * np.abs(before[1]).max())
    np.testing.assert_allclose(virial, before[2], rtol=0, atol=1e-12 * np.abs(before[2]).max())


def test_training_with_a_new_type_moves_the_old_types_predictions(pretrained, with_carbon,
                                                                  tmp_path):
    before, _ = _water(pretrained["graph"])
    trained = _tuned(tmp_path / "trained", with_carbon, ["C"], pretrained["graph"], steps=5)
    after, _ = _water(trained)
    assert np.abs(after[1] - before[1]).max() > 1e-6


def test_a_checkpoint_fine_tunes_as_its_frozen_graph(pretrained, with_carbon, tmp_path):
    from_graph = _constants(_tuned(tmp_path / "graph", with_carbon, ["C"], pretrained["graph"]))
    from_ckpt = _constants(_tuned(tmp_path / "ckpt", with_carbon, ["C"],
                                  pretrained["checkpoint"]))
    assert from_graph.keys() == from_ckpt.keys()
    for name, value in from_graph.items():
        np.testing.assert_array_equal(from_ckpt[name], value, err_msg=name)


def test_data_of_a_type_the_model_lacks_needs_a_type_map_that_adds_it(pretrained, with_carbon,
                                                                      tmp_path):
    folder = tmp_path / "refused"
    folder.mkdir()
    (folder / "input.json").write_text(json.dumps(_script([with_carbon], None, 0)))
    result = dp(folder, "train", "input.json", "--finetune", str(pretrained["graph"]))
    assert result.returncode != 0
    assert "['C']" in result.stderr and "model/type_map" in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == ["input.json"]
