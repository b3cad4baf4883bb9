"""DeepPot on the training step's kernels (infer/kernel_model.py): the model rebuilt from a frozen
graph's training script gives the graph's own numbers (1e-10 relative) for every descriptor, on
our graphs and DeePMD-kit's; a graph that its script does not reproduce, and a compressed one,
stay on the graph's ops."""
import json
import logging

import numpy as np
import pytest
import tensorflow as tf
from conftest import dp, make_workdir, small_dpa1_input, water_frames

from deepmd_tebd.infer import DeepPot
from deepmd_tebd.infer import node_names as nn


def _assert_same(got, expected, rtol=1e-10):
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _on_kernels_and_on_graph(graph, coords, cells, types):
    """(results on the kernels, results of the graph's ops) of DeepPot.eval(atomic=True)."""
    pot = DeepPot(graph)
    pot.eval(coords[:1], None if cells is None else cells[:1], types[:1] if types.ndim == 2
             else types)  # the first frames: both ways, compared
    assert pot.on_kernels
    on_graph = DeepPot(graph, kernels=False)
    assert not on_graph.on_kernels
    return (pot.eval(coords, cells, types, atomic=True),
            on_graph.eval(coords, cells, types, atomic=True))


@pytest.mark.parametrize("graph_name", [
    "ours_graph", "plain_graph", "ours_ebd_v2_smooth_graph",
    pytest.param("theirs_graph", marks=pytest.mark.slow),
    pytest.param("theirs_ebd_v2_graph", marks=pytest.mark.slow)])
def test_deep_pot_on_the_training_kernels_gives_the_graphs_numbers(graph_name, request):
    coords, cells, types = water_frames(3)
    _assert_same(*_on_kernels_and_on_graph(request.getfixturevalue(graph_name), coords, cells,
                                           types))


def test_dpa1_on_the_training_kernels_gives_the_graphs_numbers_with_virtual_atoms(tmp_path):
    run = make_workdir(tmp_path / "run", small_dpa1_input("water_se_atten.json", steps=2))
    for args in (("train", "input.json"), ("freeze", "-o", "dpa1.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    coords, cells, types = water_frames(3)
    per_frame = np.tile(types, (3, 1))
    per_frame[1, [5, 100]] = -1  # virtual atoms in frame 1
    _assert_same(*_on_kernels_and_on_graph(run / "dpa1.pb", coords, cells, per_frame))


def _with_script(graph, out, change) -> None:
    """`graph` written to `out` with its training script changed by `change(script)`."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph.read_bytes())
    node = next(n for n in graph_def.node if n.name == nn.TRAIN_ATTR_TRAINING_SCRIPT)
    script = json.loads(node.attr["value"].tensor.string_val[0])
    change(script)
    node.attr["value"].tensor.string_val[0] = json.dumps(script).encode()
    out.write_bytes(graph_def.SerializeToString())


def test_a_graph_its_script_does_not_reproduce_stays_on_the_graphs_ops(ours_graph, tmp_path,
                                                                      caplog):
    changed = tmp_path / "changed.pb"
    _with_script(ours_graph, changed,
                 lambda s: s["model"]["descriptor"].update(rcut_smth=0.1))  # same weights
    coords, cells, types = water_frames(2)
    pot = DeepPot(changed)
    with caplog.at_level(logging.WARNING, logger="deepmd_tebd"):
        first = pot.eval(coords, cells, types)
    assert not pot.on_kernels
    assert "differs from the graph" in caplog.text
    _assert_same(first, DeepPot(ours_graph, kernels=False).eval(coords, cells, types), 1e-13)


def test_graphs_without_a_readable_model_stay_on_the_graphs_ops(ours_graph,
                                                                 ours_compressed_graph, tmp_path):
    broken = tmp_path / "broken.pb"
    _with_script(ours_graph, broken,
                 lambda s: s["model"]["fitting_net"].update(neuron=[7]))  # weights do not fit
    coords, cells, types = water_frames(1)
    for graph in (broken, ours_compressed_graph):
        pot = DeepPot(graph)
        pot.eval(coords, cells, types)
        assert not pot.on_kernels, graph
