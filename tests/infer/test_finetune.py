"""`dp train --finetune PRETRAINED.pb` against DeePMD-kit 3.2 in the same run: a small se_atten_v2
model (type map O, H, C) pretrained by either program and fine-tuned for zero steps on frames
fewer than data_bias_nsample by both gives the same energy bias (1e-10) and every other constant
equal, with the user's type map a subset, absent, and on mixed-type data; the types outside the
data keep their bias; DeePMD-kit fine-tunes our graph. Refused, writing nothing: a graph without
type embedding, a compressed one, a type map naming a type twice (types the model lacks:
test_finetune_new_types.py).
`dp change-bias` of a checkpoint equals DeePMD-kit's (1e-10) in both modes and writes the
changed checkpoint in DeePMD-kit's `<name>_updated` folder; of
a frozen graph with -b, the graph's energies move by the atom counts times the bias change,
nothing else."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import dp, oracle_dp, small_dpa1_input
from mixed_data import mixed_from_system
from shared_paths import WATER, needs_water

from deepmd_tebd.infer.graph_file import read_graph_def
from deepmd_tebd.infer.weight_names import graph_constants

pytestmark = [needs_water, pytest.mark.slow]
TYPE_MAP = ["O", "H", "C"]
BIAS = "fitting_attr/t_bias_atom_e"


def _script(systems, type_map, steps=4) -> dict:
    script = small_dpa1_input("water_se_atten.json", steps)
    script["training"].update(disp_freq=max(steps, 1), save_freq=max(steps, 1))
    if type_map is None:
        script["model"].pop("type_map", None)
    else:
        script["model"]["type_map"] = type_map
    script["training"]["training_data"].update(systems=[str(s) for s in systems], batch_size=1)
    script["training"]["validation_data"].update(systems=[str(systems[0])], batch_size=1)
    return script


def _frames(root: Path, nframes: int = 4, source: Path = WATER / "data_3") -> Path:
    """The first frames of a water system: fewer than data_bias_nsample (10)."""
    root.mkdir(parents=True)
    for name in ("type.raw", "type_map.raw"):
        shutil.copy(source / name, root / name)
    (root / "set.000").mkdir()
    for array in (source / "set.000").glob("*.npy"):
        np.save(root / "set.000" / array.name, np.load(array)[:nframes])
    return root


def _run(runner, argv, folder: Path, script: dict, *extra) -> Path:
    folder.mkdir(parents=True)
    (folder / "input.json").write_text(json.dumps(script, indent=1))
    result = runner(folder, *argv, "input.json", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    frozen = runner(folder, *argv[:-1], "freeze", "-o", "model.pb")
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    return folder / "model.pb"


OURS, THEIRS = (dp, ["train"]), (oracle_dp, ["--tf", "train"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """{"ours": graph, "theirs": graph}: 4 steps of the small se_atten_v2 model, types O H C."""
    root = tmp_path_factory.mktemp("pretrained")
    script = _script([WATER / "data_0"], TYPE_MAP)
    return {side: _run(runner, argv, root / side, script)
            for side, (runner, argv) in (("ours", OURS), ("theirs", THEIRS))}


def _constants(graph: Path) -> dict:
    return {name: value for name, value in graph_constants(read_graph_def(graph)).items()
            if isinstance(value, np.ndarray) and value.dtype.kind == "f"}


@pytest.mark.parametrize("pretrained_by, case", [("ours", "subset"), ("ours", "absent"),
                                                 ("ours", "mixed"), ("theirs", "subset")])
def test_zero_step_finetuning_gives_deepmd_kits_bias_and_weights(pretrained, tmp_path,
                                                                 pretrained_by, case):
    if case == "mixed":
        system = mixed_from_system(WATER / "data_3", tmp_path / "mixed", 3)
    else:
        system = _frames(tmp_path / "frames")
    # another descriptor than the pretrained one: fine-tuning takes the pretrained sections
    script = _script([system], None if case == "absent" else ["H", "O"], steps=0)
    script["model"]["descriptor"].update(neuron=[2, 4], attn=4)
    graph = pretrained[pretrained_by]
    tuned = {side: _run(runner, argv, tmp_path / side, script, "--finetune", str(graph))
             for side, (runner, argv) in (("ours", OURS), ("theirs", THEIRS))}
    ours, theirs, before = (_constants(tuned["ours"]), _constants(tuned["theirs"]),
                            _constants(graph))
    np.testing.assert_allclose(ours[BIAS], theirs[BIAS], rtol=1e-10, atol=0)
    assert ours[BIAS][2] == before[BIAS][2]  # C: not in the data, not changed
    assert not np.allclose(ours[BIAS][:2], before[BIAS][:2])
    common = (ours.keys() & theirs.keys()) - {BIAS}
    assert len(common) > 20
    for name in sorted(common):  # the weights exactly; the data's min_nbor_dist to rounding
        np.testing.assert_allclose(ours[name], theirs[name], err_msg=name, atol=0,
                                   rtol=1e-12 if name.startswith("train_attr/") else 0)
    out = json.loads((tmp_path / "ours" / "out.json").read_text())["model"]
    assert out["type_map"] == TYPE_MAP and out["descriptor"]["neuron"] != [2, 4]


def test_finetuning_refuses_what_it_cannot_do(pretrained, plain_graph, ours_compressed_graph,
                                              tmp_path):
    system = _frames(tmp_path / "frames")
    cases = {
        "plain": (plain_graph, ["O", "H"], "has no type embedding"),
        "compressed": (ours_compressed_graph, ["O", "H"], "compressed model cannot be"),
        "twice": (pretrained["ours"], ["O", "O"], "model/type_map: --finetune: the type map "
                                                  "names ['O'] more than once"),
    }
    for name, (graph, type_map, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "input.json").write_text(json.dumps(_script([system], type_map, 0)))
        result = dp(folder, "train", "input.json", "--finetune", str(graph))
        assert result.returncode != 0, name
        assert message in result.stderr, result.stderr[-2000:]
        assert sorted(p.name for p in folder.iterdir()) == ["input.json"], name


@pytest.mark.parametrize("mode", ["change", "set"])
def test_change_bias_of_a_checkpoint_equals_deepmd_kits(pretrained, tmp_path, mode):
    """Both programs start a checkpoint from the same pretrained graph (zero fine-tuning steps,
    the pretrained script), then change its bias on other frames."""
    tuning = _frames(tmp_path / "tuning")
    frames = _frames(tmp_path / "frames", 5, WATER / "data_1")
    script = _script([tuning], TYPE_MAP, steps=0)
    graphs = {}
    for side, (runner, argv) in (("ours", OURS), ("theirs", THEIRS)):
        _run(runner, argv, tmp_path / side, script, "--finetune", str(pretrained["ours"]))
        result = runner(tmp_path / side, *argv[:-1], "change-bias", "model.ckpt", "-s",
                        str(frames), "-m", mode, "-o", "changed.pb")
        assert result.returncode == 0, result.stderr[-3000:]
        graphs[side] = _constants(tmp_path / side / "changed.pb")
        # the changed checkpoint beside the original, which stays: frozen, it is the output
        updated = tmp_path / side / "model.ckpt_updated"
        assert (updated / "checkpoint").is_file() and (updated / "input.json").is_file()
        frozen = runner(updated, *argv[:-1], "freeze", "-o", "again.pb")
        assert frozen.returncode == 0, frozen.stderr[-3000:]
        again = _constants(updated / "again.pb")
        np.testing.assert_array_equal(again[BIAS], graphs[side][BIAS])
    before = _constants(tmp_path / "ours" / "model.pb")
    np.testing.assert_allclose(graphs["ours"][BIAS], graphs["theirs"][BIAS], rtol=1e-10, atol=0)
    assert graphs["ours"][BIAS][2] == before[BIAS][2]
    assert np.abs(graphs["ours"][BIAS][:2] - before[BIAS][:2]).max() > 1e-6
    for name in (graphs["ours"].keys() & before.keys()) - {BIAS}:
        np.testing.assert_array_equal(graphs["ours"][name], before[name], err_msg=name)


def test_change_bias_of_a_frozen_graph_by_values_moves_energies_alone(pretrained, tmp_path):
    from conftest import water_frames

    from deepmd_tebd.infer import DeepPot

    graph = pretrained["ours"]
    old = _constants(graph)[BIAS]
    values = [-90.5, -12.25, 3.0]
    result = dp(tmp_path, "change-bias", str(graph), "-b", *map(str, values), "-o", "b.pb")
    assert result.returncode == 0, result.stderr[-3000:]
    coords, cells, types = water_frames(2)
    before = DeepPot(graph).eval(coords, cells, types)[:3]
    after = DeepPot(tmp_path / "b.pb").eval(coords, cells, types)[:3]
    shift = np.bincount(types, minlength=3) @ (np.array(values) - old)
    np.testing.assert_allclose(after[0] - before[0], shift, rtol=1e-10)
    for a, b in zip(after[1:], before[1:]):
        np.testing.assert_array_equal(a, b)
    wrong = dp(tmp_path, "change-bias", str(graph), "-b", "1.0", "2.0", "-o", "c.pb")
    assert wrong.returncode == 1 and "3 bias values are needed" in wrong.stderr
    assert not (tmp_path / "c.pb").exists()
