"""`dp compress` of se_e2_a models without type embedding, against DeePMD-kit 3.2's `dp compress`
on the same frozen graphs (ours and DeePMD-kit's), evaluated on data_3 frames by both runtimes;
refusals write nothing. The compressed-versus-uncompressed errors of both tools are printed
(run with -s to see them)."""
import json
import shutil

import numpy as np
import pytest
from conftest import deepmd_eval, dp, make_workdir, oracle_dp, water_frames, water_input
from reference.deepmd_oracle import require_oracle
from shared_paths import WATER

from deepmd_tebd.infer.deep_pot import DeepPot

pytestmark = pytest.mark.slow

TOL = 1e-10


def _max_errors(a, b):
    return [float(np.abs(np.reshape(x, -1) - np.reshape(y, -1)).max()) for x, y in zip(a, b)]


@pytest.fixture(scope="module")
def compressed(plain_graph, theirs_plain_graph, tmp_path_factory):
    """{(graph, tool): path}: our and DeePMD-kit's graph, each compressed by both tools."""
    out = {}
    for graph_name, graph in (("ours", plain_graph), ("theirs", theirs_plain_graph)):
        for tool, runner in (("ours", dp), ("theirs", oracle_dp)):
            work = tmp_path_factory.mktemp(f"compress_{graph_name}_{tool}")
            shutil.copy(graph, work / "in.pb")
            args = ["compress", "-i", "in.pb", "-o", "out.pb"]
            result = runner(work, *(["--tf"] if tool == "theirs" else []), *args)
            assert result.returncode == 0, result.stderr[-3000:]
            out[graph_name, tool] = work / "out.pb"
    return out


@pytest.mark.parametrize("graph_name", ["ours", "theirs"])
def test_our_compressed_graph_equals_deepmd_kits_on_data_3(graph_name, compressed, plain_graph,
                                                           theirs_plain_graph, tmp_path):
    coords, cells, types = water_frames(4)
    original = {"ours": plain_graph, "theirs": theirs_plain_graph}[graph_name]
    ours, theirs = compressed[graph_name, "ours"], compressed[graph_name, "theirs"]
    ref = DeepPot(original).eval(coords, cells, types)[:3]
    ours_out = DeepPot(ours).eval(coords, cells, types)[:3]
    theirs_out = DeepPot(theirs).eval(coords, cells, types)[:3]
    by_deepmd = deepmd_eval(ours, coords, cells, types, tmp_path)
    for got in (theirs_out, [by_deepmd[k] for k in ("energy", "force", "virial")]):
        for err in _max_errors(ours_out, got):
            assert err < TOL
    ours_err, theirs_err = _max_errors(ours_out, ref), _max_errors(theirs_out, ref)
    print(f"\n{graph_name} graph, compressed vs uncompressed, max |dE|, |dF|, |dV|: "
          f"deepmd_tebd {ours_err}, DeePMD-kit {theirs_err}")
    for a, b in zip(ours_err, theirs_err):
        assert a <= max(b, 1e-13) * 10


def test_compressed_graph_has_deepmd_kit_nodes_and_script(compressed):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(compressed["ours", "ours"].read_bytes())
    nodes = {node.name: node for node in graph_def.node}
    theirs = tf.compat.v1.GraphDef()
    theirs.ParseFromString(compressed["ours", "theirs"].read_bytes())
    assert nodes["model_type"].attr["value"].tensor.string_val == [b"compressed_model"]
    script = json.loads(nodes["train_attr/training_script"].attr["value"].tensor.string_val[0])
    assert script["model"]["compress"]["table_config"] == [5, 0.01, 0.1, -1]
    ops = {node.op for node in graph_def.node}
    assert {"TabulateFusionSeA", "TabulateFusionSeAGrad"} <= ops
    assert sum(n.op == "TabulateFusionSeA" for n in graph_def.node) == sum(
        n.op == "TabulateFusionSeA" for n in theirs.node)
    assert not any(name.startswith("filter_type_") and "/matrix_" in name for name in nodes)


def test_compressed_descriptor_gradient_has_no_strided_slice_gradients(compressed):
    """The tabulated blocks are cut with split/Slice: a strided slice's gradient
    (StridedSliceGrad, one zero-filled full-size tensor per block) cost 2.2 ms of a 47 ms
    LAMMPS step at 192 atoms; only the fitting's [nloc_i, 1] slices keep one."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(compressed["ours", "ours"].read_bytes())
    strided = [n.name for n in graph_def.node if n.op == "StridedSliceGrad"]
    assert all("/fitting" in name for name in strided), strided


def test_compressing_a_compressed_graph_is_refused_and_writes_nothing(compressed, tmp_path):
    result = dp(tmp_path, "compress", "-i", str(compressed["ours", "theirs"]), "-o", "x.pb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already compressed" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, reason", [
    ({"resnet_dt": True}, "resnet_dt"),
    ({"exclude_types": [[0, 0], [0, 1], [1, 1]]}, "every pair of types is excluded"),
])
def test_uncompressible_descriptors_are_refused_and_write_nothing(change, reason, plain_graph,
                                                                  tmp_path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(plain_graph.read_bytes())
    raw = next(n for n in graph_def.node if n.name == "train_attr/training_script")
    script = json.loads(raw.attr["value"].tensor.string_val[0])
    script["model"]["descriptor"].update(change)
    (tmp_path / "script.json").write_text(json.dumps(script))
    result = dp(tmp_path, "compress", "-i", str(plain_graph), "-o", "x.pb", "-t", "script.json")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert reason in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.json"]


@pytest.mark.parametrize("tool", ["ours", "theirs"])
def test_dp_test_runs_compressed_graphs(tool, compressed, plain_graph, tmp_path):
    system = str(WATER / "data_3")
    result = dp(tmp_path, "test", "-m", str(compressed["ours", tool]), "-s", system, "-n", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    reference = dp(tmp_path, "test", "-m", str(plain_graph), "-s", system, "-n", "2")
    line = [x for x in result.stderr.splitlines() if "Energy RMSE  " in x]
    assert line and line == [x for x in reference.stderr.splitlines() if "Energy RMSE  " in x]


def test_float32_models_compress_as_deepmd_kit_compresses_them(tmp_path):
    """A float32 model (descriptor and fitting precision float32): our compressed graph differs
    from DeePMD-kit's compression of it by no more than float32 rounding, i.e. by less than
    twice what either compression changes against the uncompressed graph; DeePMD-kit's runtime
    gives our compressed graph's numbers."""
    require_oracle()
    script = water_input("water_se_e2_a.json", numb_steps=2, small=True)
    for part in ("descriptor", "fitting_net"):
        script["model"][part]["precision"] = "float32"
    run = make_workdir(tmp_path / "f32", script)
    for args in (["train", "input.json"], ["freeze", "-o", "plain.pb"],
                 ["compress", "-i", "plain.pb", "-o", "ours.pb"]):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    result = oracle_dp(run, "--tf", "compress", "-i", "plain.pb", "-o", "theirs.pb")
    assert result.returncode == 0, result.stderr[-3000:]
    coords, cells, types = water_frames(4)
    plain, ours, theirs = (DeepPot(run / f"{name}.pb").eval(coords, cells, types)[:3]
                           for name in ("plain", "ours", "theirs"))
    by_deepmd = deepmd_eval(run / "ours.pb", coords, cells, types, tmp_path)
    ours_err, theirs_err = _max_errors(ours, plain), _max_errors(theirs, plain)
    print(f"\nfloat32, compressed vs uncompressed, max |dE|, |dF|, |dV|: deepmd_tebd {ours_err}, "
          f"DeePMD-kit {theirs_err}")
    for between, a, b in zip(_max_errors(ours, theirs), ours_err, theirs_err):
        assert between <= 2 * (a + b)
    for err in _max_errors(ours, [by_deepmd[k] for k in ("energy", "force", "virial")]):
        assert err < 1e-10
