"""The one MLP builder: resnet rules, timesteps, activations, precisions, initialisation."""
import json
import math
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.network import (ACTIVATIONS, MLP, activation_fn, normal_initializer,
                                       resnet_rules)
from model_helpers import NUMPY_ACTIVATIONS, numpy_mlp
from reference.deepmd_oracle import run_oracle_script


def built(mlp, in_width):
    mlp.build((None, in_width))
    return mlp


def test_resnet_skip_at_equal_width_and_concat_at_doubled_width_for_embedding_nets():
    # input 4: 4 -> 4 skip, 4 -> 8 concat, 8 -> 8 skip, 8 -> 5 plain
    mlp = built(MLP([4, 8, 8, 5], resnet_dt=True, seed=3, kind="embedding"), 4)
    assert mlp.rules == ["skip", "concat", "skip", None]
    x = np.random.default_rng(0).normal(size=(7, 4))
    expected = numpy_mlp(mlp, x, ["skip", "concat", "skip", None])
    np.testing.assert_allclose(mlp(x).numpy(), expected, rtol=1e-13, atol=1e-13)


def test_fitting_nets_skip_only_after_the_first_layer_and_never_concat():
    # input 4: layer 0 4 -> 4 plain (ii = 0), 4 -> 8 plain (no concat rule), 8 -> 8 skip
    mlp = built(MLP([4, 8, 8], resnet_dt=True, seed=5, kind="fitting", final_width=1), 4)
    assert mlp.rules == [None, None, "skip"]
    x = np.random.default_rng(1).normal(size=(6, 4))
    expected = numpy_mlp(mlp, x, [None, None, "skip"])
    out = mlp(x).numpy()
    assert out.shape == (6, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)


def test_resnet_rules_of_both_kinds():
    assert resnet_rules("embedding", 1, [25, 50, 100]) == [None, "concat", "concat"]
    assert resnet_rules("embedding", 2, [2, 4, 8]) == ["skip", "concat", "concat"]
    assert resnet_rules("fitting", 240, [240, 240, 240]) == [None, "skip", "skip"]
    assert resnet_rules("fitting", 4, [8, 16]) == [None, None]


def test_timestep_only_on_residual_layers_with_its_initial_mean():
    emb = built(MLP([4, 8, 8, 5], resnet_dt=True, seed=1, kind="embedding"), 4)
    hidden, _ = emb.layer_variables()
    assert [idt is not None for _, _, idt in hidden] == [True, True, True, False]
    assert hidden[0][2].shape == (1, 4)
    fit = built(MLP([4, 8, 8], resnet_dt=True, seed=1, kind="fitting", final_width=1), 4)
    hidden, _ = fit.layer_variables()
    assert [idt is not None for _, _, idt in hidden] == [False, False, True]
    assert hidden[2][2].shape == (8,)
    big = built(MLP([400, 400], resnet_dt=True, seed=2, kind="embedding"), 400)
    for _, _, idt in big.layer_variables()[0]:
        assert abs(idt.numpy().mean() - 1.0) < 3e-4
    big = built(MLP([400, 400], resnet_dt=True, seed=2, kind="fitting"), 400)
    assert abs(big.layer_variables()[0][1][2].numpy().mean() - 0.1) < 3e-4
    plain = built(MLP([4, 8], resnet_dt=False, kind="embedding"), 4)
    assert all(idt is None for _, _, idt in plain.layer_variables()[0])


def test_initial_weights_are_normal_with_scaled_deviation_and_seeded():
    a = built(MLP([300, 500], seed=7, kind="embedding"), 200)
    b = built(MLP([300, 500], seed=7, kind="embedding"), 200)
    c = built(MLP([300, 500], seed=8, kind="embedding"), 200)
    for (wa, ba, _), (wb, bb, _), (wc, _, _) in zip(a.layer_variables()[0],
                                                   b.layer_variables()[0],
                                                   c.layer_variables()[0]):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
        np.testing.assert_array_equal(ba.numpy(), bb.numpy())
        assert not np.array_equal(wa.numpy(), wc.numpy())
        n, m = wa.shape
        assert abs(wa.numpy().std() * math.sqrt(n + m) - 1.0) < 0.02
        assert abs(ba.numpy().std() - 1.0) < 0.15
    # layers draw from distinct seeds (seed + 3k): no two layers share a stream
    w1, w2 = (w.numpy().ravel()[:1000] for w, _, _ in a.layer_variables()[0])
    assert not np.allclose(w1 / w1.std(), w2 / w2.std())


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 + 5])
@pytest.mark.parametrize("shape, dtype", [((3, 4), tf.float64), ((240, 240), tf.float64),
                                          ((1, 25), tf.float32), ((5, 3), tf.float16)])
def test_seeded_draw_equals_the_op_seeded_graph_draw(seed, shape, dtype):
    graph = tf.Graph()
    with graph.as_default():  # TF1's op-seeded draw in a graph without a graph seed
        draw = tf.random.normal(shape, mean=0.5, stddev=0.2, dtype=dtype, seed=seed)
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run(draw)
    got = normal_initializer(0.5, 0.2, seed)(shape, dtype).numpy()
    np.testing.assert_array_equal(got, expected)


def test_unseeded_nets_differ():
    a = built(MLP([8], seed=None), 3)
    b = built(MLP([8], seed=None), 3)
    assert not np.array_equal(a.layer_variables()[0][0][0].numpy(),
                              b.layer_variables()[0][0][0].numpy())


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_names_compute_their_functions(name):
    x = np.linspace(-7.0, 7.0, 101)
    # TensorFlow's own approximate gelu rounds differently in the far negative tail
    rtol = 1e-6 if name == "gelu_tf" else 1e-12
    np.testing.assert_allclose(activation_fn(name)(tf.constant(x)).numpy(),
                               NUMPY_ACTIVATIONS[name](x), rtol=rtol, atol=1e-12)


def test_none_activation_is_identity():
    x = tf.constant([-2.0, 3.0], tf.float64)
    np.testing.assert_array_equal(activation_fn(None)(x).numpy(), x.numpy())


@pytest.mark.parametrize("bad", ["linear", "Tanh", "swish", ""])
def test_unknown_activation_is_rejected_naming_the_valid_ones(bad):
    with pytest.raises(ValueError, match="not a valid activation function.*tanh.*gelu_tf"):
        MLP([4], activation=bad)


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="not a valid precision"):
        MLP([4], precision="float128")


@pytest.mark.parametrize("precision, dtype", [("default", tf.float64), ("float64", tf.float64),
                                              ("float32", tf.float32)])
def test_precision_sets_weight_and_output_dtype(precision, dtype):
    mlp = built(MLP([4, 8], precision=precision, seed=1, final_width=1, kind="fitting"), 3)
    assert all(v.dtype == dtype for v in mlp.variables)
    assert mlp(np.ones((2, 3))).dtype == dtype


def test_per_layer_trainable_flags():
    mlp = built(MLP([4, 4], kind="fitting", final_width=1, trainable=[False, True, False],
                    seed=1), 3)
    trainable = {v.name for v in mlp.trainable_variables}
    assert trainable == {"matrix_2", "bias_2"}
    with pytest.raises(ValueError, match="trainable has 2 entries"):
        MLP([4, 4], kind="fitting", final_width=1, trainable=[True, True])


def test_leading_dimensions_are_kept():
    mlp = built(MLP([5, 10], seed=1), 3)
    x = np.random.default_rng(2).normal(size=(2, 4, 6, 3))
    out = mlp(x).numpy()
    assert out.shape == (2, 4, 6, 10)
    np.testing.assert_allclose(out.reshape(-1, 10), mlp(x.reshape(-1, 3)).numpy(), rtol=1e-14)


def test_config_round_trip_rebuilds_the_same_net():
    mlp = MLP([4, 8], activation="relu", resnet_dt=True, seed=11, kind="embedding",
              name="filter_type_all")
    again = MLP.from_config(mlp.get_config())
    built(mlp, 2), built(again, 2)
    assert again.get_config() == mlp.get_config()
    x = np.random.default_rng(3).normal(size=(3, 2))
    np.testing.assert_array_equal(mlp(x).numpy(), again(x).numpy())


def test_first_layer_from_its_preactivation_equals_the_full_input():
    # x W_1 + b_1 assembled from the row blocks of W_1 gives the same net output
    mlp = built(MLP([6, 12, 24], resnet_dt=True, seed=4, kind="embedding"), 5)
    x = np.random.default_rng(2).normal(size=(9, 5))
    blocks, b = mlp.split_first_layer([1, 4])
    pre = x[:, :1] @ blocks[0].numpy() + x[:, 1:] @ blocks[1].numpy() + b.numpy()
    np.testing.assert_allclose(mlp(None, first_preactivation=pre).numpy(), mlp(x).numpy(),
                               rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="do not add up"):
        mlp.split_first_layer([1, 3])
    residual = built(MLP([5, 10], kind="embedding"), 5)
    with pytest.raises(ValueError, match="residual"):
        residual(None, first_preactivation=pre[:, :5])


DEEPMD_EMBEDDING_NET = textwrap.dedent("""
    import json, sys
    import numpy as np
    from deepmd.tf.env import tf
    from deepmd.tf.utils.network import embedding_net

    a = json.loads(sys.argv[1])
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [None, a["in_width"]])
        embedding_net(x, a["widths"], tf.float64, resnet_dt=True, seed=a["seed"])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            print(json.dumps({v.name.split(":")[0]: sess.run(v).tolist()
                              for v in tf.global_variables()}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("in_width, widths", [(1, [5, 10, 20]), (7, [7, 14])])
def test_seeded_initial_weights_are_deepmd_kits(tmp_path, in_width, widths):
    args = {"in_width": in_width, "widths": widths, "seed": 3}
    theirs = json.loads(run_oracle_script(DEEPMD_EMBEDDING_NET, args, tmp_path))
    mlp = built(MLP(widths, resnet_dt=True, kind="embedding", seed=3, precision="float64"),
                in_width)
    ours = {v.name: v.numpy() for v in mlp.weights}
    # DeePMD-kit also makes idt on non-residual layers, where it has no effect (none here)
    assert set(ours) <= set(theirs) and any(name.startswith("idt") for name in ours)
    for name, value in ours.items():
        np.testing.assert_array_equal(value, np.reshape(theirs[name], value.shape), err_msg=name)
