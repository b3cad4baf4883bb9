"""Frozen models across the two runtimes: our graph in DeePMD-kit's DeepPot and theirs in ours,
to 1e-10; the graph's node names, dtypes and attributes; `dp test` printing DeePMD-kit's figures."""
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import deepmd_eval, dp, oracle_dp, water_frames

from deepmd_tebd.infer import DeepPot
from deepmd_tebd.infer import node_names as nn

pytestmark = pytest.mark.slow

KEYS = ("energy", "force", "virial", "atom_energy", "atom_virial")


def assert_same(ours, theirs, rtol=1e-10):
    for key, a in zip(KEYS, ours):
        b = theirs[key]
        assert a.shape == b.shape, key
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= rtol * scale, (key, np.abs(a - b).max() / scale)


@pytest.mark.parametrize("periodic", [True, False])
def test_our_graph_in_deepmd_kit_gives_our_numbers(ours_graph, tmp_path, periodic):
    coords, cells, types = water_frames(4)
    if not periodic:
        cells = None
    theirs = deepmd_eval(ours_graph, coords, cells, types, tmp_path)
    ours = DeepPot(ours_graph).eval(coords, cells, types, atomic=True)
    assert_same(ours, theirs)
    assert list(theirs["type_map"]) == ["O", "H"] and float(theirs["rcut"]) == 6.0
    assert int(theirs["ntypes"]) == 2 and int(theirs["dim_fparam"]) == 0


def test_deepmd_kit_graph_in_ours_gives_their_numbers(theirs_graph, tmp_path):
    coords, cells, types = water_frames(4)
    theirs = deepmd_eval(theirs_graph, coords, cells, types, tmp_path)
    dp_ = DeepPot(theirs_graph)
    assert dp_.get_type_map() == ["O", "H"] and dp_.get_ntypes() == 2
    assert dp_.get_rcut() == 6.0 and dp_.get_dim_fparam() == 0 and dp_.get_dim_aparam() == 0
    assert_same(dp_.eval(coords, cells, types, atomic=True), theirs)


@pytest.mark.parametrize("periodic", [True, False])
def test_our_se_a_ebd_v2_graph_in_deepmd_kit_gives_our_numbers(ours_ebd_v2_graph, tmp_path,
                                                               periodic):
    coords, cells, types = water_frames(4)
    if not periodic:
        cells = None
    theirs = deepmd_eval(ours_ebd_v2_graph, coords, cells, types, tmp_path)
    assert_same(DeepPot(ours_ebd_v2_graph).eval(coords, cells, types, atomic=True), theirs)


def test_deepmd_kit_se_a_ebd_v2_graph_in_ours_gives_their_numbers(theirs_ebd_v2_graph, tmp_path):
    coords, cells, types = water_frames(4)
    theirs = deepmd_eval(theirs_ebd_v2_graph, coords, cells, types, tmp_path)
    assert_same(DeepPot(theirs_ebd_v2_graph).eval(coords, cells, types, atomic=True), theirs)


def test_frozen_graph_has_deepmd_kit_inputs_outputs_and_attributes(ours_graph):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(ours_graph.read_bytes())
    nodes = {node.name: node for node in graph_def.node}
    placeholders = {name: tf.dtypes.as_dtype(node.attr["dtype"].type)
                    for name, node in nodes.items() if node.op == "Placeholder"}
    assert placeholders == {nn.T_COORD: tf.float64, nn.T_TYPE: tf.int32, nn.T_NATOMS: tf.int32,
                            nn.T_BOX: tf.float64, nn.T_MESH: tf.int32}
    for name in nn.OUTPUTS:
        assert name in nodes
    from deepmd_tebd.data.neighbor_stat import neighbor_stat
    from shared_paths import WATER

    min_dist, _ = neighbor_stat([WATER / f"data_{i}" for i in range(3)], 6.0, ["O", "H"])
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        def value(name):
            return sess.run(graph.get_tensor_by_name(name + ":0"))

        assert value(nn.MODEL_ATTR_TMAP) == b"O H"
        assert value(nn.MODEL_ATTR_MODEL_TYPE) == b"ener"
        assert value(nn.MODEL_ATTR_MODEL_VERSION) == b"1.1"
        assert value(nn.MODEL_TYPE) == b"original_model"
        rcut = graph.get_tensor_by_name(nn.DESCRPT_ATTR_RCUT + ":0")
        assert rcut.dtype == tf.float64 and value(nn.DESCRPT_ATTR_RCUT) == 6.0
        for name, expected in ((nn.DESCRPT_ATTR_NTYPES, 2), (nn.FITTING_ATTR_DFPARAM, 0),
                               (nn.FITTING_ATTR_DAPARAM, 0)):
            assert graph.get_tensor_by_name(name + ":0").dtype == tf.int32
            assert value(name) == expected
        script = json.loads(value(nn.TRAIN_ATTR_TRAINING_SCRIPT))
        assert script["model"]["type_embedding"]["neuron"] == [2, 4, 8]
        assert value(nn.TRAIN_ATTR_MIN_NBOR_DIST) == pytest.approx(min_dist, rel=1e-12)
    # the only custom ops are DeePMD-kit's
    custom = {node.op for node in graph_def.node} - set(tf.raw_ops.__dict__)
    assert custom == {"ProdEnvMatA", "ProdForceSeA", "ProdVirialSeA"}


_LINE = re.compile(r"(Energy|Force |Virial) (MAE|RMSE)\s*(/Natoms)?\s*:\s*([-+.\deE]+)")


def figures(text):
    """{("Energy", "RMSE", ""): value, ...} of the first system's block of dp test's log."""
    out = {}
    for kind, stat, per, value in _LINE.findall(text):
        out.setdefault((kind.strip(), stat, per), float(value))
    return out


@pytest.mark.parametrize("which", ["ours", "theirs"])
def test_dp_test_prints_deepmd_kit_figures(which, ours_graph, theirs_graph, tmp_path):
    from shared_paths import WATER

    graph = ours_graph if which == "ours" else theirs_graph
    system = str(WATER / "data_3")
    ours = dp(tmp_path, "test", "-m", str(graph), "-s", system, "-n", "20")
    theirs = oracle_dp(tmp_path, "--tf", "test", "-m", str(graph), "-s", system, "-n", "20")
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    a, b = figures(ours.stderr), figures(theirs.stderr + theirs.stdout)
    compared = [key for key in b if key in a]
    assert {("Energy", "RMSE", ""), ("Force", "RMSE", ""), ("Energy", "MAE", "/Natoms")} <= set(
        compared)
    for key in compared:
        assert a[key] == pytest.approx(b[key], rel=1e-8, abs=0), key
    assert "# number of test data : 20 " in ours.stderr


def test_dp_test_detail_files_and_parity_plot(ours_graph, tmp_path):
    from shared_paths import WATER

    result = dp(tmp_path, "test", "-m", str(ours_graph), "-s", str(WATER / "data_3"), "-n", "3",
                "-d", "detail.txt")
    assert result.returncode == 0, result.stderr[-2000:]
    e = np.loadtxt(tmp_path / "detail.e.out")
    f = np.loadtxt(tmp_path / "detail.f.out")
    v = np.loadtxt(tmp_path / "detail.v.out")
    assert e.shape == (3, 2) and f.shape == (3 * 192, 6) and v.shape == (3, 18)
    assert (tmp_path / "detail.e.out").read_text().startswith(f"# {WATER / 'data_3'}: data_e "
                                                              "pred_e")
    # the forces are in the order of type.raw, the reference columns the data as stored
    stored = np.load(WATER / "data_3/set.000/force.npy")[:3].reshape(-1, 3)
    np.testing.assert_array_equal(f[:, :3], stored)
    coords, cells, types = water_frames(3)
    _, force, virial = DeepPot(ours_graph).eval(coords, cells, types)
    np.testing.assert_allclose(f[:, 3:], force.reshape(-1, 3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "detail.e_peratom.out"), e / 192)
    png = tmp_path / "detail.parity.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def last_figures(text):
    """As `figures`, from the last block (the weighted average of several systems)."""
    out = {}
    for kind, stat, per, value in _LINE.findall(text):
        out[(kind.strip(), stat, per)] = float(value)
    return out


def test_dp_test_weighted_average_of_several_systems_equals_deepmd_kit(ours_graph, tmp_path):
    from shared_paths import WATER

    # systems of one set each: DeePMD-kit 2.2 tests the last set of a system, 3.x all of its
    # sets (data_1 has two), so only single-set systems can be compared with 3.2
    systems = tmp_path / "systems"
    systems.mkdir()
    for name in ("data_0", "data_2", "data_3"):
        (systems / name).symlink_to(WATER / name)
    ours = dp(tmp_path, "test", "-m", str(ours_graph), "-s", str(systems), "-n", "4")
    theirs = oracle_dp(tmp_path, "--tf", "test", "-m", str(ours_graph), "-s", str(systems),
                       "-n", "4")
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    assert ours.stderr.count("# testing system : ") == 3
    assert "# number of systems : 3" in ours.stderr
    a, b = last_figures(ours.stderr), last_figures(theirs.stderr + theirs.stdout)
    for key in (("Energy", "MAE", ""), ("Energy", "RMSE", ""), ("Energy", "RMSE", "/Natoms"),
                ("Force", "MAE", ""), ("Force", "RMSE", "")):
        assert a[key] == pytest.approx(b[key], rel=1e-8, abs=0), key
