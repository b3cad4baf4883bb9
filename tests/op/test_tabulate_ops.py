"""TabulateFusionSeA, TabulateFusionSeAGrad and TabulateFusionSeAGradGrad against DeePMD-kit 3.2.0's
op library (same inputs, in its own venv), and their gradients against finite differences.

The inputs cover every branch of the table lookup: below `lower` and beyond `max` (linear
continuation), both strides, the exact grid edges, sorted padding (slots repeating the last ŝ
with em[1..3] = 0), a repeated ŝ that is not padding, and is_sorted false.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from deepmd_tebd.op import op_module  # noqa: E402
from tests.reference.deepmd_oracle import run_oracle_script  # noqa: E402

LOWER, UPPER, EXT, STRIDE = -1.0, 2.0, 3.0, 0.1
M = 8

_ORACLE = r'''
import json, sys
import numpy as np
from deepmd.tf.env import op_module, tf
tf.compat.v1.enable_v2_behavior()
args = json.loads(sys.argv[1])
z = np.load(args["inputs"])
out = {}
for dtype in ("float64", "float32"):
    c = {k: tf.constant(z[k].astype(dtype)) for k in z.files}
    d = op_module.tabulate_fusion_se_a(c["table"], c["info"], c["em_x"], c["em"],
                                       last_layer_size=int(c["table"].shape[1]) // 6)
    gx, gem = op_module.tabulate_fusion_se_a_grad(c["table"], c["info"], c["em_x"], c["em"],
                                                  c["dy"], d)
    out[dtype + "/descriptor"] = d.numpy()
    out[dtype + "/dy_dem_x"] = gx.numpy()
    out[dtype + "/dy_dem"] = gem.numpy()
    for s in (True, False):
        out[dtype + f"/dz_dy/{s}"] = op_module.tabulate_fusion_se_a_grad_grad(
            c["table"], c["info"], c["em_x"], c["em"], c["hx"], c["h"], d, is_sorted=s).numpy()
np.savez(args["outputs"], **out)
print("ok")
'''


def _grid():
    upper_max = EXT * UPPER
    nspline = round((UPPER - LOWER) / STRIDE) + round((upper_max - UPPER) / (10 * STRIDE))
    info = np.array([LOWER, UPPER, upper_max, STRIDE, 10 * STRIDE, -1.0])
    return nspline, info


def _inputs(seed=0, nloc=5, nnei=12):
    """Random table and inputs with every lookup branch and both kinds of padding."""
    rng = np.random.default_rng(seed)
    nspline, info = _grid()
    table = rng.normal(size=(nspline, 6 * M)) * np.array([1, 0.5, 0.2, 0.1, 0.05, 0.02] * M)
    em_x = rng.uniform(LOWER - 0.5, EXT * UPPER + 1.0, size=(nloc, nnei))
    em = rng.normal(size=(nloc, nnei, 4))
    # centre 0: the grid edges and beyond
    em_x[0, :8] = [LOWER - 2.0, LOWER, UPPER - 1e-12, UPPER, EXT * UPPER - 1e-9, EXT * UPPER,
                   EXT * UPPER + 3.0, LOWER + 5 * STRIDE]
    # centre 1: sorted padding from slot 7 (ŝ of an empty slot, em[1..3] = 0)
    em_x[1, 7:] = -0.3
    em[1, 7:, 1:] = 0.0
    em[1, 7:, 0] = -0.3
    # centre 2: a real neighbour repeats the last ŝ (em[1..3] != 0): no shortcut there
    em_x[2, 3] = em_x[2, -1]
    # centre 3: padding ŝ appears early with em[1..3] = 0, as DeePMD-kit's shortcut sees it
    em_x[3, 4] = em_x[3, -1]
    em[3, 4, 1:] = 0.0
    em[3, -1, 1:] = 0.0
    dy = rng.normal(size=(nloc, 4, M))
    hx = rng.normal(size=(nloc * nnei, 1))
    h = rng.normal(size=(nloc, nnei, 4))
    return {"table": table, "info": info, "em_x": em_x.reshape(-1, 1), "em": em, "dy": dy,
            "hx": hx, "h": h}


def _ours(z, dtype):
    c = {k: tf.constant(v.astype(dtype)) for k, v in z.items()}
    d = op_module.tabulate_fusion_se_a(c["table"], c["info"], c["em_x"], c["em"],
                                       last_layer_size=M)
    gx, gem = op_module.tabulate_fusion_se_a_grad(c["table"], c["info"], c["em_x"], c["em"],
                                                  c["dy"], d)
    out = {"descriptor": d.numpy(), "dy_dem_x": gx.numpy(), "dy_dem": gem.numpy()}
    for s in (True, False):
        out[f"dz_dy/{s}"] = op_module.tabulate_fusion_se_a_grad_grad(
            c["table"], c["info"], c["em_x"], c["em"], c["hx"], c["h"], d, is_sorted=s).numpy()
    return out


@pytest.mark.slow
def test_tabulation_ops_equal_deepmd_kit_3_2_on_every_lookup_branch(tmp_path):
    z = _inputs()
    np.savez(tmp_path / "inputs.npz", **z)
    run_oracle_script(_ORACLE, {"inputs": str(tmp_path / "inputs.npz"),
                                "outputs": str(tmp_path / "outputs.npz")}, tmp_path)
    theirs = np.load(tmp_path / "outputs.npz")
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
        ours = _ours(z, dtype)
        for key, value in ours.items():
            ref = theirs[f"{dtype}/{key}"]
            assert value.shape == ref.shape, key
            scale = np.abs(ref).max()
            np.testing.assert_allclose(value, ref, rtol=0, atol=rtol * scale,
                                       err_msg=f"{dtype} {key}")


def _smooth_inputs():
    """Inputs without padding and away from the grid edges (finite differences stay inside one
    interval)."""
    z = _inputs(seed=3, nloc=4, nnei=8)
    rng = np.random.default_rng(4)
    # interval midpoints of the first table, and the two linear continuations
    em_x = LOWER + STRIDE * (rng.integers(0, 29, size=z["em_x"].shape) + 0.5)
    em_x[:2] = [[LOWER - 0.7], [EXT * UPPER + 0.9]]
    z["em_x"] = em_x
    z["em"] = rng.normal(size=z["em"].shape)   # no slot looks like padding (em[1..3] != 0)
    return z


def test_tabulation_gradient_equals_finite_differences():
    z = _smooth_inputs()
    table, info = tf.constant(z["table"]), tf.constant(z["info"])

    def descriptor(em_x, em):
        return op_module.tabulate_fusion_se_a(table, info, em_x, em, last_layer_size=M)

    analytic, numeric = tf.test.compute_gradient(
        descriptor, [tf.constant(z["em_x"]), tf.constant(z["em"])], delta=1e-6)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-6 * np.abs(n).max())


def test_tabulation_second_gradient_equals_finite_differences():
    z = _smooth_inputs()
    table, info = tf.constant(z["table"]), tf.constant(z["info"])
    em_x, em = tf.constant(z["em_x"]), tf.constant(z["em"])

    def first_gradient(dy):
        d = op_module.tabulate_fusion_se_a(table, info, em_x, em, last_layer_size=M)
        dy_dem_x, dy_dem = op_module.tabulate_fusion_se_a_grad(table, info, em_x, em, dy, d)
        return tf.concat([tf.reshape(dy_dem_x, [-1]), tf.reshape(dy_dem, [-1])], axis=0)

    analytic, numeric = tf.test.compute_gradient(first_gradient, [tf.constant(z["dy"])],
                                                 delta=1e-6)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-6 * np.abs(n).max())


def test_tabulation_without_neighbours_is_zero():
    z = _inputs()
    em = tf.zeros([2, 0, 4], tf.float64)
    em_x = tf.zeros([0, 1], tf.float64)
    d = op_module.tabulate_fusion_se_a(z["table"], z["info"], em_x, em, last_layer_size=M)
    assert d.shape == (2, 4, M) and not np.any(d.numpy())
    gx, gem = op_module.tabulate_fusion_se_a_grad(z["table"], z["info"], em_x, em,
                                                  tf.ones([2, 4, M], tf.float64), d)
    assert gx.shape == (0, 1) and gem.shape == (2, 0, 4)


def test_tabulation_rejects_a_table_of_the_wrong_width():
    z = _inputs()
    with pytest.raises(tf.errors.InvalidArgumentError, match="table must have shape"):
        op_module.tabulate_fusion_se_a(z["table"], z["info"], z["em_x"], z["em"],
                                       last_layer_size=M + 1)


def test_tabulation_op_shapes_are_inferred_in_graphs():
    z = _inputs()

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float64),
                                  tf.TensorSpec([None, 12, 4], tf.float64)])
    def f(em_x, em):
        return op_module.tabulate_fusion_se_a(z["table"], z["info"], em_x, em, last_layer_size=M)

    assert f.get_concrete_function().output_shapes.as_list() == [None, 4, M]
