"""DPA-1 from DeePMD-kit's own se_atten water examples (../shared/inputs, unchanged): the scripts
normalise as DeePMD-kit 3.2 normalises them; made small, they train, freeze, and their graphs
run in DeePMD-kit's DeepPot and in LAMMPS as in ours (1e-10), and DeePMD-kit's graph in our
DeepPot, and DeePMD-kit's `--init-frz-model` starts from ours; sel "auto" gives one block of
the data's largest neighbour count x 1.1, rounded up to 4, written as an integer; `dp compress`
refuses them with the reason; se_atten_v2 conserves the total energy in LAMMPS NVE."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import (DEEPMD_NORMALISE, assert_runs_in_deepmd_kit_and_lammps, deepmd_eval, dp,
                      leaves, make_workdir, oracle_dp, small_dpa1_input, water_frames)
from shared_paths import INPUTS, needs_water

from deepmd_tebd.config import normalize
from deepmd_tebd.infer import DeepPot
from reference.deepmd_oracle import run_oracle_script
from reference.lammps import run_lammps

pytestmark = [needs_water, pytest.mark.slow]
EXAMPLES = ["water_se_atten.json", "water_se_atten_compressible.json",
            "water_se_atten_dpa1_compat.json"]

V3_DESCRIPTOR_KEYS = {"concat_output_tebd", "tebd_dim", "scaling_factor", "normalize",
                      "env_protection", "use_econf_tebd", "use_tebd_bias", "lmax"}


def test_deepmd_kits_se_atten_examples_normalise_as_deepmd_kit_does(tmp_path):
    paths = [str(INPUTS / name) for name in EXAMPLES]
    theirs_all = json.loads(run_oracle_script(DEEPMD_NORMALISE, paths, tmp_path))
    for path in paths:
        ours = dict(leaves(normalize(json.loads(open(path).read()), path)))
        theirs = dict(leaves(theirs_all[path]))
        descriptor = {k for k in theirs if k.startswith("model/descriptor/")}
        common = set(ours) & set(theirs)
        # the keys DeePMD-kit 3.x added are not filled in (README), the others all are
        assert {k.rsplit("/", 1)[1] for k in descriptor - set(ours)} <= V3_DESCRIPTOR_KEYS
        assert {k: ours[k] for k in common} == {k: theirs[k] for k in common}, path


@pytest.mark.parametrize("name", ["water_se_atten.json", "water_se_atten_dpa1_compat.json"])
def test_dpa1_graphs_run_in_deepmd_kits_deep_pot_and_lammps(tmp_path, name):
    run = make_workdir(tmp_path / "run", small_dpa1_input(name))
    for args in (("train", "input.json"), ("freeze", "-o", "dpa1.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    assert_runs_in_deepmd_kit_and_lammps(run / "dpa1.pb", tmp_path)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((run / "dpa1.pb").read_bytes())
    types = {node.op for node in graph_def.node}
    # the training step's own batched product stays out of the frozen graph
    assert "BatchMatMulV2" in types and "TebdBatchMatMul" not in types
    compressed = dp(run, "compress", "-i", "dpa1.pb", "-o", "compressed.pb")
    assert compressed.returncode == 1
    assert "model compression is not supported" in compressed.stderr
    assert not (run / "compressed.pb").exists()


def test_deepmd_kits_dpa1_graph_runs_in_ours(tmp_path):
    """DeePMD-kit 3.2 trains and freezes the small se_atten_v2 model; our DeepPot evaluates its
    graph as DeePMD-kit's does (1e-10)."""
    run = make_workdir(tmp_path / "theirs", small_dpa1_input("water_se_atten.json"))
    for args in (("train", "input.json"), ("freeze", "-o", "theirs.pb")):
        result = oracle_dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    _assert_deepmd_kit_evaluates(run / "theirs.pb", run / "theirs.pb", tmp_path, 1e-10)


def _assert_deepmd_kit_evaluates(graph, ours, tmp_path, tol):
    """DeePMD-kit's DeepPot on `graph` gives our DeepPot's results on `ours` (water frames)."""
    coords, cells, types = water_frames(2)
    e, f, v = DeepPot(ours).eval(coords, cells, types)[:3]
    theirs = deepmd_eval(graph, coords, cells, types, tmp_path)
    np.testing.assert_allclose(theirs["energy"].reshape(e.shape), e, rtol=tol)
    for key, ref in (("force", f), ("virial", v)):
        np.testing.assert_allclose(theirs[key].reshape(ref.shape), ref, rtol=0,
                                   atol=tol * np.abs(ref).max())


DEEPMD_TYPEEBD = """
import json, sys
from deepmd.infer import DeepPot
print(json.dumps(DeepPot(sys.argv[1].strip('"')).eval_typeebd().tolist()))
"""


def test_deepmd_kit_starts_from_our_graph_with_init_frz_model(tmp_path):
    """DeePMD-kit's `dp train --init-frz-model ours.pb` (0 steps) then `dp freeze` gives our
    model back (energies, forces, virials); its DeepPot.eval_typeebd reads our padded type embedding
    table (t_typeebd, with descrpt_attr/sel and original_sel kept in the graph)."""
    ours = make_workdir(tmp_path / "ours", small_dpa1_input("water_se_atten.json", steps=2))
    for args in (("train", "input.json"), ("freeze", "-o", "ours.pb")):
        result = dp(ours, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    theirs = tmp_path / "ours" / "theirs"  # beside our run folder: the same ../data
    theirs.mkdir()
    (theirs / "input.json").write_text(json.dumps(small_dpa1_input("water_se_atten.json", steps=0)))
    for args in (("train", "input.json", "--init-frz-model", "../run/ours.pb"),
                 ("freeze", "-o", "theirs.pb")):
        result = oracle_dp(theirs, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    _assert_deepmd_kit_evaluates(theirs / "theirs.pb", ours / "ours.pb", tmp_path, 1e-12)
    table = np.array(json.loads(run_oracle_script(DEEPMD_TYPEEBD, str(ours / "ours.pb"),
                                                  tmp_path)))
    assert table.shape == (3, 8) and not table[-1].any()  # O, H and the zero padding row
    assert np.abs(table[:2]).min() > 0


def test_auto_sel_is_one_block_of_the_largest_neighbour_count(tmp_path):
    script = small_dpa1_input("water_se_atten.json", steps=1)
    script["model"]["descriptor"]["sel"] = "auto"
    run = make_workdir(tmp_path / "run", script)
    result = dp(run, "train", "input.json")
    assert result.returncode == 0, result.stderr[-3000:]
    sel = json.loads((run / "out.json").read_text())["model"]["descriptor"]["sel"]
    sizes = [line for line in result.stderr.splitlines() if "max nbor size" in line]
    largest = int(sizes[-1].rsplit("[", 1)[1].rstrip("]"))
    assert sel == 4 * ((int(largest * 1.1) + 3) // 4)  # an integer, as DeePMD-kit writes it


def test_se_atten_v2_conserves_the_total_energy_in_lammps(tmp_path):
    """600 NVE steps of 0.25 fs at 50 K with a small se_atten_v2 model (20 training steps):
    the total energy drifts by at most 1 % of the potential energy's swing."""
    script = small_dpa1_input("water_se_atten.json", steps=20)
    # the default type embedding (no section) draws its weights without a seed: seeded here,
    # so that every run trains the same model
    script["model"]["type_embedding"] = {"neuron": [8], "activation_function": "none",
                                         "use_tebd_bias": False, "seed": 1}
    run = make_workdir(tmp_path / "run", script)
    for args in (("train", "input.json"), ("freeze", "-o", "v2.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    coords, cells, types = water_frames(1)
    md = run_lammps(tmp_path / "nve", run / "v2.pb", coords[0], cells[0], types, ["O", "H"],
                    nve_steps=600, timestep_ps=0.00025, temperature=50.0)
    thermo = md["thermo"]  # step, pe, ke, etotal every 10 steps
    pe_swing = thermo[:, 1].max() - thermo[:, 1].min()
    drift = np.abs(thermo[:, 3] - thermo[0, 3]).max()
    # the atoms move (a swing of 0.12 eV), and the drift (1.4e-6 eV) is measured against it
    assert thermo[-1, 0] == 600 and pe_swing > 0.05
    assert drift <= 0.01 * pe_swing, (drift, pe_swing)
