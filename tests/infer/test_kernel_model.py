"""DeepPot on the training step's kernels (infer/kernel_model.py): the model rebuilt from a frozen
graph's training script gives the graph's own numbers (1e-10 relative) for every descriptor
(trained water graphs, ours and DeePMD-kit's; untrained small models of every descriptor variant,
with frame and atomic parameters, three types and an open cluster); a graph that its script does
not reproduce, and a compressed one, stay on the graph's ops."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import dp, make_workdir, small_dpa1_input, water_frames
from model.model_helpers import EBD_V2, Frame, build_model, variant_config

from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.infer import DeepPot
from deepmd_tebd.infer import node_names as nn
from deepmd_tebd.infer.frozen import freeze_graph_def, model_graph_def


def _assert_same(got, expected, rtol=1e-10):
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _on_kernels_and_on_graph(graph, coords, cells, types, **params):
    """(results on the kernels, results of the graph's ops) of DeepPot.eval(atomic=True);
    params: fparam and aparam of every frame."""
    results = []
    for kernels in (True, False):
        pot = DeepPot(graph, kernels=kernels)
        first = {key: value[:1] for key, value in params.items()}
        pot.eval(coords[:1], None if cells is None else cells[:1],
                 types[:1] if types.ndim == 2 else types, **first)  # the kernels' check
        assert pot.on_kernels == kernels
        results.append(pot.eval(coords, cells, types, atomic=True, **params))
    return results


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


@pytest.mark.parametrize("variant, kind", [(v, "triclinic") for v in (True, False, *EBD_V2)]
                         + [(True, "open"), (False, "open"), ("atten_v2", "open")])
def test_every_descriptor_on_the_kernels_gives_its_graphs_numbers(variant, kind, tmp_path):
    """Small untrained models (random statistics) of three types with 2 frame and 1 atomic
    parameters, frozen as `dp freeze` does, on a triclinic box (every variant) and an open
    cluster (no mesh: three variants): both ways equal (1e-10)."""
    frame = Frame.random(5, kind, ntypes=3)
    cfg = variant_config(frame.sel(), variant, type_one_side=False, numb_fparam=2,
                         numb_aparam=1)
    model = build_model(cfg)
    config = build_config(normalize({"model": cfg, "learning_rate": {"type": "exp"},
                                     "training": {"training_data": {"systems": ["unused"]},
                                                  "numb_steps": 1}}, "test"))
    graph = tmp_path / "model.pb"
    graph.write_bytes(freeze_graph_def(model_graph_def(model, config)).SerializeToString())
    rng = np.random.default_rng(6)
    coords = frame.coord[None] + rng.normal(0.0, 0.05, (3, frame.nat, 3))
    cells = None if frame.box is None else np.tile(frame.box.reshape(1, 9), (3, 1))
    fparam, aparam = rng.normal(size=(3, 2)), rng.normal(size=(3, frame.nat, 1))
    _assert_same(*_on_kernels_and_on_graph(graph, coords, cells, frame.atype, fparam=fparam,
                                           aparam=aparam))


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


def test_deep_pot_sizes_tensorflows_thread_pools_from_deepmd_kits_variables(plain_graph):
    """The kernel model runs in TensorFlow's own pools: a new process's DeepPot sizes them from
    DP_INTRA_OP_PARALLELISM_THREADS / DP_INTER_OP_PARALLELISM_THREADS, as the graph's session."""
    code = ("import sys, tensorflow as tf; from deepmd_tebd.infer import DeepPot; "
            "DeepPot(sys.argv[1]); t = tf.config.threading; "
            "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())")
    env = dict(os.environ, DP_INTRA_OP_PARALLELISM_THREADS="1", DP_INTER_OP_PARALLELISM_THREADS="3",
               TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code, str(plain_graph)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["1", "3"]


def test_a_kernel_model_that_fails_on_the_first_frames_leaves_the_graphs_ops(plain_graph,
                                                                          monkeypatch, caplog):
    from deepmd_tebd.infer import kernel_model

    def fail(self, inputs):
        raise tf.errors.InvalidArgumentError(None, None, "no kernel for these frames")

    monkeypatch.setattr(kernel_model.KernelModel, "__call__", fail)
    coords, cells, types = water_frames(1)
    pot = DeepPot(plain_graph)
    with caplog.at_level(logging.WARNING, logger="deepmd_tebd"):
        got = pot.eval(coords, cells, types)
    assert not pot.on_kernels and "fails on these frames" in caplog.text
    _assert_same(got, DeepPot(plain_graph, kernels=False).eval(coords, cells, types), 1e-13)
