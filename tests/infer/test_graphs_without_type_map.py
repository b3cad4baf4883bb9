"""DeePMD-kit's own scripts without model/type_map (tests/reference/deepmd_inputs.py: the v1 water
se_a input and the type-embedding unit-test model), each trained 20 steps and frozen by us and by
DeePMD-kit 3.2: no type_map in either out.json, an empty `model_attr/tmap` in either graph, each
graph gives the same numbers in the other runtime (1e-10), `dp test` prints DeePMD-kit's figures,
LAMMPS runs either graph with a bare `pair_coeff * *` (and refuses element names alike), and the
ASE calculator needs a type_dict."""
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import deepmd_eval, dp, make_workdir, oracle_dp, water_frames
from test_frozen_models import assert_same, figures

from deepmd_tebd.infer import DeepPot
from deepmd_tebd.infer import node_names as nn
from reference.deepmd_inputs import tebd_water_se_a_type, v1_water_se_a
from reference.lammps import run_lammps
from shared_paths import WATER

pytestmark = pytest.mark.slow

STEPS = 20


def v1_script():
    # DeePMD-kit's file lists the root "../data/" (batch_size [1]); a list names systems here
    # (DeePMD-kit 2.2's rule; 3.x searches each entry), so one system is named
    script = v1_water_se_a(["../data/data_0"])
    script["training"].update(stop_batch=STEPS, disp_freq=10, save_freq=10)
    return script


def tebd_script():
    script = tebd_water_se_a_type(["../data/data_0", "../data/data_1"])
    script["training"].update(numb_steps=STEPS, disp_freq=10, save_freq=10,
                              validation_data={"systems": ["../data/data_3"], "batch_size": 1})
    return script


SCRIPTS = {"v1_water_se_a": v1_script, "tebd_water_se_a_type": tebd_script}


@pytest.fixture(scope="module", params=list(SCRIPTS))
def runs(request, tmp_path_factory) -> dict:
    """{"ours": folder, "theirs": folder}: the script trained and frozen (graph.pb) by each."""
    out = {}
    for who, runner, prefix in (("ours", dp, ()), ("theirs", oracle_dp, ("--tf",))):
        run = make_workdir(tmp_path_factory.mktemp(f"{request.param}_{who}"),
                           SCRIPTS[request.param]())
        for args in (("train", "input.json"), ("freeze", "-o", "graph.pb")):
            result = runner(run, *prefix, *args)
            assert result.returncode == 0, (who, result.stderr[-3000:])
        out[who] = run
    return out


def test_out_json_has_no_type_map_and_deepmd_kit_sel(runs):
    ours, theirs = (json.loads((runs[w] / "out.json").read_text())["model"]
                    for w in ("ours", "theirs"))
    assert "type_map" not in ours and "type_map" not in theirs
    assert ours["descriptor"]["sel"] == theirs["descriptor"]["sel"]


def test_frozen_type_map_is_empty_like_deepmd_kit(runs, tmp_path):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((runs["ours"] / "graph.pb").read_bytes())
    tmap = {n.name: n for n in graph_def.node}[nn.MODEL_ATTR_TMAP]
    assert tmap.attr["value"].tensor.string_val == [b""]
    coords, cells, types = water_frames(1)
    for who in ("ours", "theirs"):
        theirs = deepmd_eval(runs[who] / "graph.pb", coords, cells, types, tmp_path)
        ours = DeepPot(runs[who] / "graph.pb")
        assert list(theirs["type_map"]) == ours.get_type_map() == []
        assert int(theirs["ntypes"]) == ours.get_ntypes() == 2


@pytest.mark.parametrize("who", ["ours", "theirs"])
def test_graph_gives_the_same_numbers_in_both_runtimes(runs, who, tmp_path):
    coords, cells, types = water_frames(4)
    graph = runs[who] / "graph.pb"
    theirs = deepmd_eval(graph, coords, cells, types, tmp_path)
    assert_same(DeepPot(graph).eval(coords, cells, types, atomic=True), theirs)


@pytest.mark.parametrize("who", ["ours", "theirs"])
def test_dp_test_prints_deepmd_kit_figures(runs, who, tmp_path):
    graph, system = str(runs[who] / "graph.pb"), str(WATER / "data_3")
    ours = dp(tmp_path, "test", "-m", graph, "-s", system, "-n", "5")
    theirs = oracle_dp(tmp_path, "--tf", "test", "-m", graph, "-s", system, "-n", "5")
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    a, b = figures(ours.stderr), figures(theirs.stderr + theirs.stdout)
    assert {("Energy", "RMSE", ""), ("Force", "RMSE", "")} <= set(a) & set(b)
    for key in set(a) & set(b):
        assert a[key] == pytest.approx(b[key], rel=1e-8, abs=0), key


@pytest.mark.parametrize("who", ["ours", "theirs"])
def test_lammps_bare_pair_coeff_step_zero_equals_deep_pot(runs, who, tmp_path):
    coords, cells, types = water_frames(1)
    graph = runs[who] / "graph.pb"
    run = run_lammps(tmp_path, graph, coords[0], cells[0], types, ["O", "H"],
                     name_elements=False)
    e, f, v = DeepPot(graph).eval(coords, cells, types)
    assert run["energy"] == pytest.approx(e[0, 0], rel=1e-10)
    assert np.abs(run["forces"] - f[0]).max() <= 1e-10 * np.abs(f[0]).max()
    assert np.abs(run["virial"] - v[0]).max() <= 1e-10 * np.abs(v[0]).max()


@pytest.mark.parametrize("who", ["ours", "theirs"])
def test_lammps_refuses_element_names_for_a_graph_without_type_map(runs, who, tmp_path):
    coords, cells, types = water_frames(1)
    with pytest.raises(RuntimeError, match="element O not found in the model"):
        run_lammps(tmp_path, runs[who] / "graph.pb", coords[0], cells[0], types, ["O", "H"])


def test_ase_calculator_needs_a_type_dict(runs):
    pytest.importorskip("ase")
    from ase import Atoms

    from deepmd_tebd.calculator import DP

    graph = runs["ours"] / "graph.pb"
    coords, cells, types = water_frames(1)
    with pytest.raises(ValueError, match="type_dict"):
        DP(str(graph))
    atoms = Atoms(symbols=list(np.array(["O", "H"])[types]), positions=coords[0],
                  cell=cells[0].reshape(3, 3), pbc=True)
    atoms.calc = DP(str(graph), type_dict={"O": 0, "H": 1})
    e, f, _ = DeepPot(graph).eval(coords, cells, types)
    assert atoms.get_potential_energy() == pytest.approx(e[0, 0], rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f[0], rtol=1e-12, atol=1e-12)
