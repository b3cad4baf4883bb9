"""DeePMD-kit 3.2's own scripts run here unchanged: its water examples of a model kind this package
trains (se_e2_a, and se_a_ebd_v2 as its se_e2_a_tebd example, kept under
reference/deepmd_kit_3_2_examples; 2.2's se_e2_a with a type_embedding section from ../shared), and
the out.json DeePMD-kit writes for each (made by DeePMD-kit's normalisation in the oracle, in this
run), pass `dp check`
with every key both normalisations write equal, with no warning about its 3.x keys (all at
their defaults), and trains 20 steps; the
training script inside DeePMD-kit's frozen graphs passes `dp check`; and a model of DeePMD-kit
3.x's type embedding (no biases, electron configurations) freezes into a graph that DeePMD-kit's
DeepPot and LAMMPS evaluate as ours does."""
from __future__ import annotations

import json

import pytest
import numpy as np
from conftest import (DEEPMD_NORMALISE, assert_runs_in_deepmd_kit_and_lammps, dp, leaves,
                      make_workdir, tiny_input, water_input)
from shared_paths import DEEPMD_3_2_EXAMPLES as EXAMPLES_3_2
from shared_paths import INPUTS, WATER, needs_water

from deepmd_tebd.config import normalize
from deepmd_tebd.infer import node_names as nn
from deepmd_tebd.infer.graph_file import read_graph_def
from deepmd_tebd.infer.weight_names import graph_constants
from reference.deepmd_oracle import run_oracle_script

pytestmark = [needs_water, pytest.mark.slow]
SCRIPTS = {"3.2 se_e2_a": EXAMPLES_3_2 / "se_e2_a.json",
           "3.2 se_e2_a_tebd": EXAMPLES_3_2 / "se_e2_a_tebd.json",
           "2.2 se_e2_a_tebd": INPUTS / "water_se_e2_a_tebd.json",
           "2.2 se_e2_a": INPUTS / "water_se_e2_a.json",
           "2.2 se_a_ebd_v2": INPUTS / "water_se_a_ebd_v2.json"}
EXAMPLES = list(SCRIPTS)
TRAINED = EXAMPLES[:3]  # the two 2.2 scripts left differ from 3.2's by one key each


@pytest.fixture(scope="module")
def their_out_json(tmp_path_factory) -> dict:
    """{example: the out.json DeePMD-kit 3.2 writes for it (before sel "auto" is resolved)}."""
    tmp = tmp_path_factory.mktemp("deepmd3_out")
    paths = [str(SCRIPTS[name]) for name in EXAMPLES]
    out = json.loads(run_oracle_script(DEEPMD_NORMALISE, paths, tmp))
    return {name: out[str(SCRIPTS[name])] for name in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES)
def test_deepmd_kits_out_json_normalises_to_the_same_values(their_out_json, example):
    theirs = their_out_json[example]
    assert "env_protection" in theirs["model"]["descriptor"]  # a 3.x out.json, 3.x keys in it
    ours = dict(leaves(normalize(json.loads(SCRIPTS[example].read_text()), example)))
    again = dict(leaves(normalize(theirs, "out.json")))
    theirs = dict(leaves(theirs))
    common = set(ours) & set(theirs)
    assert len(common) > 40
    assert {k: ours[k] for k in common} == {k: theirs[k] for k in common}
    assert {k: again[k] for k in common} == {k: theirs[k] for k in common}


@pytest.mark.parametrize("example", TRAINED)
def test_the_example_and_deepmd_kits_out_json_pass_dp_check_and_train_20_steps(
        their_out_json, example, tmp_path):
    (tmp_path / "data").symlink_to(WATER)
    run = tmp_path / "run"
    run.mkdir()
    (run / "input.json").write_text(SCRIPTS[example].read_text())
    checked = dp(run, "check", "input.json")
    assert checked.returncode == 0, checked.stderr[-3000:]
    script = their_out_json[example]
    script["training"].update(numb_steps=20, disp_freq=10, save_freq=20)
    (run / "out_32.json").write_text(json.dumps(script, indent=4))
    checked = dp(run, "check", "out_32.json")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "3.x options" not in checked.stderr, checked.stderr[-3000:]  # all at their defaults
    trained = dp(run, "train", "out_32.json")
    assert trained.returncode == 0, trained.stderr[-3000:]
    rows = [line.split() for line in (run / "lcurve.out").read_text().splitlines()
            if not line.startswith("#")]
    assert [row[0] for row in rows] == ["0", "10", "20"]


def test_the_mixed_precision_example_is_refused_as_deepmd_kits_trainer_refuses_it(tmp_path):
    """DeePMD-kit 3.2's se_e2_a_mixed_prec example asks for output_prec float64, which its
    TensorFlow trainer refuses (only float32): refused here before anything is written."""
    (tmp_path / "input.json").write_text((EXAMPLES_3_2 / "se_e2_a_mixed_prec.json").read_text())
    result = dp(tmp_path, "train", "input.json")
    assert result.returncode != 0
    assert "training/mixed_precision/output_prec" in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.json"]


@pytest.mark.parametrize("graph", ["theirs_graph", "theirs_plain_graph"])
def test_the_training_script_in_deepmd_kits_graphs_passes_dp_check(request, graph, tmp_path):
    path = request.getfixturevalue(graph)
    constants = graph_constants(read_graph_def(path))
    raw = constants[nn.TRAIN_ATTR_TRAINING_SCRIPT]
    script = json.loads(raw.item().decode())
    assert "env_protection" in script["model"]["descriptor"]
    (tmp_path / "script.json").write_text(json.dumps(script))
    result = dp(tmp_path, "check", "script.json", "--skip-data")
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_3x_type_embedding_graph_runs_in_deepmd_kits_deep_pot_and_lammps(tmp_path):
    script = tiny_input(water_input())
    script["model"]["type_embedding"].update(use_tebd_bias=False, use_econf_tebd=True)
    run = make_workdir(tmp_path / "econf", script)
    for args in (("train", "input.json"), ("freeze", "-o", "econf.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    assert_runs_in_deepmd_kit_and_lammps(run / "econf.pb", tmp_path)


DEEPMD_EPOCH_STEPS = """
import json, math, sys
from deepmd.dpmodel.utils.training_utils import compute_total_numb_batch
from deepmd.utils.data_system import get_data
a = json.loads(sys.argv[1])
data = get_data(a["data"], 6.0, ["O", "H"], None)
total = compute_total_numb_batch(data.nbatches, data.sys_probs)
print(json.dumps(int(math.ceil(a["epochs"] * total))))
"""


@pytest.mark.parametrize("data", [
    {"batch_size": 1},
    {"batch_size": [1, 2, 3], "auto_prob": "prob_uniform"},
    {"batch_size": "auto", "sys_probs": [0.5, 0.3, 0.2]},
])
def test_numb_epoch_gives_deepmd_kits_numb_steps(data, tmp_path):
    from deepmd_tebd.data.script_check import check_against_data
    from deepmd_tebd.config import build_config

    systems = [str(WATER / f"data_{i}") for i in range(3)]
    script = json.loads((INPUTS / "water_se_e2_a_tebd.json").read_text())
    script["training"]["training_data"] = {"systems": systems, **data}
    script["training"]["validation_data"]["systems"] = [str(WATER / "data_3")]
    del script["training"]["numb_steps"]
    script["training"]["numb_epoch"] = 2.5
    config = build_config(normalize(script, "input.json"))
    ours, _ = check_against_data(config, "input.json", skip_neighbor_stat=True)
    theirs = json.loads(run_oracle_script(DEEPMD_EPOCH_STEPS, {
        "data": {"systems": systems, **data}, "epochs": 2.5}, tmp_path))
    assert ours.training.numb_steps == theirs


def test_legacy_training_keys_move_as_deepmd_kit_moves_them(tmp_path):
    script = json.loads((INPUTS / "water_se_e2_a_tebd.json").read_text())
    script["training"].update(warmup_ratio=0.1, warmup_start_factor=0.2, opt_type="Adam",
                              adam_beta1=0.85)
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(script))
    theirs = json.loads(run_oracle_script(DEEPMD_NORMALISE, [str(path)], tmp_path))[str(path)]
    ours = normalize(script, "legacy.json")
    assert ours["optimizer"] == {k: theirs["optimizer"][k] for k in ours["optimizer"]}
    for key in ("warmup_ratio", "warmup_start_factor"):
        assert ours["learning_rate"][key] == theirs["learning_rate"][key]
        assert key not in ours["training"] and key not in theirs["training"]


DEEPMD_CHANGE_BIAS = """
import json, sys
import numpy as np
from deepmd.infer import DeepPot
from deepmd.tf.fit.ener import change_energy_bias_lower
from deepmd.utils.data_system import DeepmdDataSystem
a = json.loads(sys.argv[1])
data = DeepmdDataSystem(a["systems"], 1, 1, type_map=a["type_map"], shuffle_test=False)
data.add("energy", 1, atomic=False, must=True, high_prec=True)
new = change_energy_bias_lower(data, DeepPot(a["graph"]), a["type_map"], a["type_map"],
                               np.array(a["bias"], dtype=np.float64), "change-by-statistic",
                               a["ntest"])
print(json.dumps(np.asarray(new).reshape(-1).tolist()))
"""


def test_change_bias_after_training_moves_the_bias_as_deepmd_kit_does(tmp_path):
    """Two runs of the same seed, the second with change_bias_after_training: its bias is the
    first's moved as DeePMD-kit's change_energy_bias_lower moves it on the first's graph (the
    frames in stored order: DeePMD-kit's shuffle switched off)."""
    biases, graphs = [], []
    for change in (False, True):
        script = tiny_input(water_input())
        script["model"]["data_bias_nsample"] = 3
        script["training"]["change_bias_after_training"] = change
        run = make_workdir(tmp_path / f"change_{change}", script)
        for args in (("train", "input.json"), ("freeze", "-o", "g.pb")):
            result = dp(run, *args)
            assert result.returncode == 0, result.stderr[-3000:]
        assert ("Change energy bias" in result.stderr) is False  # freeze does not change it
        constants = graph_constants(read_graph_def(run / "g.pb"))
        biases.append(np.asarray(constants["fitting_attr/t_bias_atom_e"]).reshape(-1))
        graphs.append(run / "g.pb")
    theirs = json.loads(run_oracle_script(DEEPMD_CHANGE_BIAS, {
        "systems": [str(WATER / "data_0")], "type_map": ["O", "H"], "graph": str(graphs[0]),
        "bias": biases[0].tolist(), "ntest": 3}, tmp_path))
    assert not np.allclose(biases[1], biases[0])
    np.testing.assert_allclose(biases[1], theirs, rtol=1e-10, atol=1e-10)
