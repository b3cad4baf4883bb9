"""Mixed precision as DeePMD-kit 2.2 does it (deepmd/tf/utils/network.py `embedding_net` and
`one_layer` with mixed_prec; DescrptSeA / EnerFitting.enable_mixed_precision): the weights are kept
in output_prec and cast for the matmuls; embedding nets compute every layer in compute_prec, fitting
nets their hidden layers only (each layer's output cast back, the final layer in output_prec); the
environment matrix, type embedding and energy sums keep their own precision."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.config.objects import MixedPrecisionConfig
from deepmd_tebd.model import EnergyModel
from deepmd_tebd.model.network import MLP
from model_helpers import (Frame, model_config, model_settings, numpy_residual,
                           random_statistics)

MATMULS = ("MatMul", "BatchMatMulV2")


def matmul_dtypes(fn, *args):
    """The dtype of every matmul in the graph fn traces for args (gradient graphs included)."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    return [op.get_attr("T") for op in graph.get_operations() if op.type in MATMULS]


def mlp(kind, compute="float16", **kwargs):
    net = MLP([8, 16, 16] if kind == "embedding" else [12, 12], precision="float32",
              compute_precision=compute, seed=3, kind=kind, resnet_dt=True,
              final_width=1 if kind == "fitting" else None, **kwargs)
    net.build((None, 4 if kind == "embedding" else 6))
    return net


def numpy_mixed(net, x, compute):
    """DeePMD-kit's casts in NumPy: operands rounded to the compute dtype, results rounded to it
    after each operation (float32 arithmetic), residuals of embedding nets in the compute dtype,
    of fitting nets in float32, final layer in float32."""
    low = {"float16": np.float16}[compute]

    def r(a):
        return np.asarray(a, np.float32).astype(low).astype(np.float32)

    hidden, final = net.layer_variables()
    x = np.asarray(x, np.float32)
    x = r(x) if net.kind == "embedding" else x
    for rule, (w, b, idt) in zip(net.rules, hidden):
        h = r(np.tanh(r(r(r(x) @ r(w.numpy())) + r(b.numpy()))))
        if idt is not None:
            h = r(h * r(idt.numpy().reshape(-1)))
        x = numpy_residual(rule, x, h)
        x = r(x) if net.kind == "embedding" else x
    if final is not None:
        x = x @ final[0].numpy() + final[1].numpy()
    return x


@pytest.mark.parametrize("kind", ["embedding", "fitting"])
def test_weights_and_output_keep_output_prec(kind):
    net = mlp(kind)
    assert {tf.as_dtype(v.dtype) for v in net.weights} == {tf.float32}
    x = tf.random.normal([5, net.in_width], dtype=tf.float32)
    assert net(x).dtype == tf.float32


def test_embedding_net_computes_every_matmul_in_compute_prec():
    net = mlp("embedding")
    x = tf.TensorSpec([None, 4], tf.float32)
    assert set(matmul_dtypes(net, x)) == {tf.float16}


def test_fitting_net_computes_hidden_layers_in_compute_prec_and_final_layer_in_output_prec():
    net = mlp("fitting")
    dtypes = matmul_dtypes(net, tf.TensorSpec([None, 6], tf.float32))
    # two hidden layers in float16, the final layer in float32
    assert sorted(d.name for d in dtypes) == ["float16", "float16", "float32"]


@pytest.mark.parametrize("kind", ["embedding", "fitting"])
def test_mixed_net_equals_numpy_with_deepmd_casts(kind):
    net = mlp(kind)
    x = np.random.default_rng(0).normal(size=(7, net.in_width)).astype(np.float32)
    expected = numpy_mixed(net, x, "float16")
    # float16 has 11 significant bits; the TF and NumPy sums differ in their rounding order
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=5e-3, atol=5e-3)


def test_gradients_of_mixed_net_flow_to_float32_weights():
    net = mlp("fitting")
    x = tf.random.normal([5, 6], dtype=tf.float32)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(net(x))
    grads = tape.gradient(y, net.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in grads)
    assert all(np.isfinite(g.numpy()).all() for g in grads)


@pytest.mark.parametrize("tebd", [False, True])
def test_energy_model_runs_nets_mixed_and_keeps_float64_outputs(tebd):
    cfg = model_config([6, 6], tebd=tebd)
    mixed = MixedPrecisionConfig(output_prec="float32", compute_prec="float16")
    model = EnergyModel(model_settings(cfg), mixed_precision=mixed)
    model.build()
    random_statistics(model, 0)
    frame = Frame.random(0, "triclinic", ntypes=2)
    out = frame.evaluate(model)
    for v in model.descriptor.nets()[0].weights + model.fitting.trainable_weights:
        assert tf.as_dtype(v.dtype) == tf.float32
    for key in ("energy", "force", "virial", "atom_energy"):
        assert out[key].dtype == np.float64 and np.isfinite(out[key]).all()
    # the same weights in full precision: the mixed energies agree to float16's precision
    full = EnergyModel(model_settings(cfg))
    full.build()
    random_statistics(full, 0)
    for a, b in zip(full.weights, model.weights):
        a.assign(tf.cast(b, a.dtype))
    ref = frame.evaluate(full)
    scale = np.abs(ref["atom_energy"]).max()
    np.testing.assert_allclose(out["atom_energy"], ref["atom_energy"], atol=2e-2 * scale)
    assert not np.array_equal(out["atom_energy"], ref["atom_energy"])
