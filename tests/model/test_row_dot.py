"""TebdRowDot (the row-by-row dot product of the fused embedding net's force pass) and its
gradient ops compute what TensorFlow's reduce_sum(a * b, -1) computes: the value (against NumPy
too), the first derivatives and the second and third derivatives of a force-like loss, in float64
and float32; inputs of other shapes are refused."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.op import op_module


def _pair(rows, d, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=(rows, d)).astype(dtype)),
            tf.constant(rng.normal(size=(rows, d)).astype(dtype)))


def _derivatives(a, b, fused):
    """c, dE/da, dE/db and the gradients with respect to a, b of L = E + sum(sin(dE/da) u) +
    sum(cos(dE/db) w), E = sum(sin(c)), and the gradient of sum(dL/da^2) with respect to b."""
    rng = np.random.default_rng(1)
    u = tf.constant(rng.normal(size=a.shape), a.dtype)
    w = tf.constant(rng.normal(size=a.shape), a.dtype)

    def dot(a, b):
        return op_module.tebd_row_dot(a, b) if fused else tf.reduce_sum(a * b, axis=-1)

    def step(a, b):
        with tf.GradientTape() as third:
            third.watch(b)
            with tf.GradientTape() as outer:
                outer.watch([a, b])
                with tf.GradientTape() as inner:
                    inner.watch([a, b])
                    c = dot(a, b)
                    energy = tf.reduce_sum(tf.sin(c))
                de_da, de_db = inner.gradient(energy, [a, b])
                loss = energy + tf.reduce_sum(tf.sin(de_da) * u) + tf.reduce_sum(tf.cos(de_db) * w)
            dl_da, dl_db = outer.gradient(loss, [a, b])
            size = tf.reduce_sum(dl_da ** 2)
        return [c, de_da, de_db, dl_da, dl_db, third.gradient(size, b)]

    function = tf.function(step, autograph=False).get_concrete_function(a, b)
    types = {op.type for op in function.graph.get_operations()}
    assert ({"TebdRowDot", "TebdRowDotGrad"} <= types) == fused
    return [x.numpy() for x in function(a, b)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("rows, d", [(257, 100), (3, 1), (0, 4)], ids=["rows", "one", "none"])
def test_row_dot_and_three_orders_of_its_derivatives_equal_tensorflows_ops(rows, d, dtype, tol):
    a, b = _pair(rows, d, dtype)
    got = _derivatives(a, b, fused=True)
    want = _derivatives(a, b, fused=False)
    np.testing.assert_allclose(got[0], np.einsum("ij,ij->i", a.numpy(), b.numpy()), rtol=tol,
                               atol=tol)
    for k, (x, y) in enumerate(zip(got, want)):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * max(np.abs(y).max(initial=0), 1),
                                   err_msg=f"output {k}")


def test_row_dot_refuses_matrices_of_two_shapes_and_a_z_of_another_length():
    a, b = _pair(4, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="matrices of one shape"):
        op_module.tebd_row_dot(a, b[:3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"z must be \[4\]"):
        op_module.tebd_row_dot_grad(a, b, tf.zeros([3], tf.float64))
