"""TebdBatchMatMul (op/tf/batch_mat_mul.cc), the training step's batched matrix product: equal to
NumPy's products for every transpose combination and both precisions, shapes and errors as
BatchMatMulV2's, gradients of first and second order equal to BatchMatMulV2's; the training step
uses it, frozen graphs never hold it (model/kernels.py)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.kernels import batch_matmul, training_kernels
from deepmd_tebd.op import op_module

CASES = [(False, False), (False, True), (True, False), (True, True)]


def _operands(rng, adj_x, adj_y, batch=5, m=7, k=4, n=6, dtype=np.float64):
    x = rng.normal(size=(batch, k, m) if adj_x else (batch, m, k)).astype(dtype)
    y = rng.normal(size=(batch, n, k) if adj_y else (batch, k, n)).astype(dtype)
    return x, y


@pytest.mark.parametrize("adj_x, adj_y", CASES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-5)])
def test_products_equal_numpys(adj_x, adj_y, dtype, rtol):
    x, y = _operands(np.random.default_rng(1), adj_x, adj_y, dtype=dtype)
    z = op_module.tebd_batch_mat_mul(x, y, adj_x=adj_x, adj_y=adj_y).numpy()
    ref = np.matmul(np.swapaxes(x, 1, 2) if adj_x else x, np.swapaxes(y, 1, 2) if adj_y else y)
    assert z.dtype == dtype and z.shape == (5, 7, 6)
    np.testing.assert_allclose(z, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_empty_batches_and_inner_dimensions():
    z = op_module.tebd_batch_mat_mul(np.zeros((0, 3, 2)), np.zeros((0, 2, 4)))
    assert z.shape == (0, 3, 4)
    z = op_module.tebd_batch_mat_mul(np.ones((2, 3, 0)), np.ones((2, 0, 4))).numpy()
    assert z.shape == (2, 3, 4) and not z.any()


@pytest.mark.parametrize("x_shape, y_shape", [((2, 3, 4), (2, 5, 6)), ((2, 3, 4), (3, 4, 6)),
                                              ((3, 4), (4, 6))])
def test_mismatched_shapes_are_refused(x_shape, y_shape):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        op_module.tebd_batch_mat_mul(np.ones(x_shape), np.ones(y_shape))


@pytest.mark.parametrize("adj_x, adj_y", CASES)
def test_first_and_second_order_gradients_equal_batch_mat_mul_v2s(adj_x, adj_y):
    x, y = (tf.constant(a) for a in _operands(np.random.default_rng(2), adj_x, adj_y))
    w = tf.constant(np.random.default_rng(3).normal(size=(5, 7, 6)))

    def derivatives(product):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([x, y])
            with tf.GradientTape() as inner:
                inner.watch([x, y])
                value = tf.reduce_sum(tf.sin(product(x, y)) * w)
            gx, gy = inner.gradient(value, [x, y])
            mixed = tf.reduce_sum(gx * gx) + tf.reduce_sum(gy * tf.cos(gy))
        return [gx, gy] + outer.gradient(mixed, [x, y])

    ours = derivatives(lambda a, b: op_module.tebd_batch_mat_mul(a, b, adj_x=adj_x, adj_y=adj_y))
    theirs = derivatives(lambda a, b: tf.linalg.matmul(a, b, adjoint_a=adj_x, adjoint_b=adj_y))
    for got, expected in zip(ours, theirs):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-13)


def test_the_training_step_uses_it_and_other_graphs_do_not():
    x, y = _operands(np.random.default_rng(4), False, True)

    def op_types(traced):
        graph = tf.function(lambda a, b: batch_matmul(a, b, adjoint_b=True))
        if traced:
            with training_kernels():
                concrete = graph.get_concrete_function(x, y)
        else:
            concrete = graph.get_concrete_function(x, y)
        return {op.type for op in concrete.graph.get_operations()}

    assert "TebdBatchMatMul" in op_types(traced=True)
    assert "TebdBatchMatMul" not in op_types(traced=False)
    assert "BatchMatMulV2" in op_types(traced=False)
