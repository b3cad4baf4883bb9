"""TebdBatchMatMul and TebdMatMul (op/tf/batch_mat_mul.cc), the training step's matrix products:
equal to NumPy's products for every transpose combination and both precisions (TebdMatMul also for
row counts that cut into one piece per thread and that do not), shapes and errors as
BatchMatMulV2's and MatMul's (thin products too: a dimension of at most 4), gradients of first and second order equal to BatchMatMulV2's; the
training step uses them, frozen graphs never hold them (model/kernels.py)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.kernels import batch_matmul, training_kernels
from deepmd_tebd import op
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


@pytest.mark.parametrize("adj_x, adj_y", CASES)
@pytest.mark.parametrize("m, k, n", [(4, 138, 100), (138, 4, 100), (138, 100, 4), (100, 4, 16),
                                     (1, 1, 1), (3, 5, 2), (5, 3, 9)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-5)])
def test_thin_products_equal_numpys(adj_x, adj_y, m, k, n, dtype, rtol):
    """The contraction's shapes (a dimension of at most 4: the loops of thin_product) and their
    neighbours on the dense products."""
    x, y = _operands(np.random.default_rng(3), adj_x, adj_y, batch=3, m=m, k=k, n=n,
                     dtype=dtype)
    z = op_module.tebd_batch_mat_mul(x, y, adj_x=adj_x, adj_y=adj_y).numpy()
    ref = np.matmul(np.swapaxes(x, 1, 2) if adj_x else x, np.swapaxes(y, 1, 2) if adj_y else y)
    assert z.dtype == dtype and z.shape == (3, m, n)
    np.testing.assert_allclose(z, ref, rtol=rtol, atol=rtol * np.sqrt(k) * np.abs(ref).max())


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


@pytest.mark.parametrize("adj_x, adj_y", CASES)
@pytest.mark.parametrize("m, k, n", [(1, 5, 3), (31, 240, 100), (64, 1, 7), (257, 128, 128)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-5)])
def test_matrix_products_equal_numpys(adj_x, adj_y, m, k, n, dtype, rtol):
    rng = np.random.default_rng(m + k + n)
    x = rng.normal(size=(k, m) if adj_x else (m, k)).astype(dtype)
    y = rng.normal(size=(n, k) if adj_y else (k, n)).astype(dtype)
    z = op_module.tebd_mat_mul(x, y, adj_x=adj_x, adj_y=adj_y).numpy()
    ref = (x.T if adj_x else x) @ (y.T if adj_y else y)
    assert z.dtype == dtype and z.shape == (m, n)
    np.testing.assert_allclose(z, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_empty_matrices_and_inner_dimensions():
    assert op_module.tebd_mat_mul(np.zeros((0, 3)), np.zeros((3, 4))).shape == (0, 4)
    z = op_module.tebd_mat_mul(np.ones((40, 0)), np.ones((0, 4))).numpy()
    assert z.shape == (40, 4) and not z.any()


@pytest.mark.parametrize("x_shape, y_shape", [((3, 4), (5, 6)), ((2, 3, 4), (2, 4, 6))])
def test_mismatched_matrices_are_refused(x_shape, y_shape):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        op_module.tebd_mat_mul(np.ones(x_shape), np.ones(y_shape))


def test_products_run_on_the_openblas_the_library_was_linked_with():
    """setup.py links scipy-openblas32's OpenBLAS (op/tf/dense_gemm.h): loading the op library
    brought that file into this process, and build_info.json names the version built against."""
    spec = importlib.util.find_spec("scipy_openblas32")
    assert spec is not None, "scipy-openblas32 is not installed"
    library = (Path(spec.origin).parent / "lib" / "libscipy_openblas.so").resolve()
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(library) in maps.read_text()
    info = json.loads((Path(op.__file__).parent / "build_info.json").read_text())
    assert info["blas"] == f"scipy-openblas32 {importlib.metadata.version('scipy-openblas32')}"
