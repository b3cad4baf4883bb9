"""The fused normalisations of the training step's attention (TebdL2Normalize, TebdLayerNorm,
their gradient ops and those ops' gradient ops) compute what TensorFlow's ops compute for
tf.math.l2_normalize and the layer normalisation: the value (against NumPy too), the first
derivative, and every second derivative of a force-like loss, for rows of any length, rows under
the clamp, float64 and float32; a third derivative is refused, and so are inputs of other
shapes."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.kernels import l2_normalize, layer_norm, training_kernels
from deepmd_tebd.op import op_module


def _rows(shape, dtype=np.float64, seed=0, tiny_rows=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    if tiny_rows:  # rows whose |x|^2 is under the clamp 1e-12
        x.reshape(-1, shape[-1])[:tiny_rows] *= 1e-8
    return tf.constant(x.astype(dtype))


def _derivatives(x, fused):
    """y, dE/dx and the gradient with respect to x and c of L = E + sum(sin(dE/dx) c),
    E = sum(y v): the value, the force-like first derivative and the second derivatives."""
    rng = np.random.default_rng(1)
    v = tf.constant(rng.normal(size=x.shape), x.dtype)
    c = tf.constant(rng.normal(size=x.shape), x.dtype)

    def step(x, v):
        with tf.GradientTape() as outer:
            outer.watch([x, v])
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = l2_normalize(x)
                energy = tf.reduce_sum(y * v)
            de_dx = inner.gradient(energy, x)
            loss = energy + tf.reduce_sum(tf.sin(de_dx) * c)
        return [y, de_dx] + outer.gradient(loss, [x, v])

    if fused:
        with training_kernels():
            function = tf.function(step).get_concrete_function(x, v)
        types = {op.type for op in function.graph.get_operations()}
        assert {"TebdL2Normalize", "TebdL2NormalizeGrad", "TebdL2NormalizeGradGrad"} <= types
    else:
        function = tf.function(step).get_concrete_function(x, v)
    return [t.numpy() for t in function(x, v)]


@pytest.mark.parametrize("shape", [(3, 7, 128), (40, 3), (5, 1), (2, 0, 4)],
                         ids=["attention_rows", "directions", "one_wide", "no_rows"])
def test_fused_l2_normalize_equals_tensorflow_to_second_order(shape):
    fused = _derivatives(_rows(shape), fused=True)
    plain = _derivatives(_rows(shape), fused=False)
    for name, a, b in zip(("y", "dE/dx", "dL/dx", "dL/dv"), fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)


def test_rows_under_the_clamp_follow_tensorflow_maximum():
    x = _rows((6, 5), tiny_rows=2)
    fused, plain = _derivatives(x, fused=True), _derivatives(x, fused=False)
    for name, a, b in zip(("y", "dE/dx", "dL/dx", "dL/dv"), fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


def test_float32_rows_equal_tensorflow():
    x = _rows((4, 9, 16), dtype=np.float32)
    fused, plain = _derivatives(x, fused=True), _derivatives(x, fused=False)
    for name, a, b in zip(("y", "dE/dx", "dL/dx", "dL/dv"), fused, plain):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=name)


def test_value_equals_numpy_and_gradient_equals_finite_differences():
    x = _rows((4, 6), seed=3).numpy()
    y = op_module.tebd_l2_normalize(x).numpy()
    np.testing.assert_allclose(y, x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-14)
    u = np.random.default_rng(4).normal(size=x.shape)
    grad = op_module.tebd_l2_normalize_grad(x, u).numpy()
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 5)]:
        step = np.zeros_like(x)
        step[i, j] = h
        up = (op_module.tebd_l2_normalize(x + step).numpy() * u).sum()
        down = (op_module.tebd_l2_normalize(x - step).numpy() * u).sum()
        assert abs((up - down) / (2 * h) - grad[i, j]) < 1e-8


def _third_derivative(energy_of, x):
    """d/dx of sum((d/dx sum((d/dx energy_of(x))^2))^2)."""
    with tf.GradientTape() as t3:
        t3.watch(x)
        with tf.GradientTape() as t2:
            t2.watch(x)
            with tf.GradientTape() as t1:
                t1.watch(x)
                e = energy_of(x)
            g1 = t1.gradient(e, x)
            l2 = tf.reduce_sum(g1 * g1)
        g2 = t2.gradient(l2, x)
        l3 = tf.reduce_sum(g2 * g2)
    return t3.gradient(l3, x)


def test_third_derivative_is_refused():
    with pytest.raises(LookupError, match="not three times"):
        _third_derivative(lambda x: tf.reduce_sum(op_module.tebd_l2_normalize(x) ** 3),
                          _rows((2, 4)))


def test_inputs_of_different_shapes_are_refused():
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 1 has shape"):
        op_module.tebd_l2_normalize_grad(np.ones((2, 3)), np.ones((3, 2)))


def _layer_norm_derivatives(x, fused, eps=1e-3):
    """y, dE/dx and the gradients with respect to x, v, gamma and beta of
    L = E + sum(sin(dE/dx) c), E = sum(y v), y the layer normalisation of x."""
    rng = np.random.default_rng(2)
    d = x.shape[-1]
    v = tf.constant(rng.normal(size=x.shape), x.dtype)
    c = tf.constant(rng.normal(size=x.shape), x.dtype)
    gamma = tf.constant(rng.normal(1.0, 0.3, size=d), x.dtype)
    beta = tf.constant(rng.normal(size=d), x.dtype)

    def step(x, v, gamma, beta):
        with tf.GradientTape() as outer:
            outer.watch([x, v, gamma, beta])
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = layer_norm(x, gamma, beta, eps)
                energy = tf.reduce_sum(y * v)
            de_dx = inner.gradient(energy, x)
            loss = energy + tf.reduce_sum(tf.sin(de_dx) * c)
        return [y, de_dx] + outer.gradient(loss, [x, v, gamma, beta])

    args = (x, v, gamma, beta)
    if fused:
        with training_kernels():
            function = tf.function(step).get_concrete_function(*args)
        types = {op.type for op in function.graph.get_operations()}
        assert {"TebdLayerNorm", "TebdLayerNormGrad", "TebdLayerNormGradGrad"} <= types
    else:
        function = tf.function(step).get_concrete_function(*args)
    return [t.numpy() for t in function(*args)]


LAYER_NORM_NAMES = ("y", "dE/dx", "dL/dx", "dL/dv", "dL/dgamma", "dL/dbeta")


@pytest.mark.parametrize("shape", [(3, 7, 100), (40, 3), (5, 1), (2, 0, 4)],
                         ids=["attention_rows", "narrow", "one_wide", "no_rows"])
def test_fused_layer_norm_equals_tensorflow_to_second_order(shape):
    fused = _layer_norm_derivatives(_rows(shape), fused=True)
    plain = _layer_norm_derivatives(_rows(shape), fused=False)
    for name, a, b in zip(LAYER_NORM_NAMES, fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=name)


def test_float32_layer_norm_equals_tensorflow():
    x = _rows((4, 9, 16), dtype=np.float32)
    fused, plain = _layer_norm_derivatives(x, True), _layer_norm_derivatives(x, False)
    for name, a, b in zip(LAYER_NORM_NAMES, fused, plain):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4, err_msg=name)


def test_layer_norm_value_equals_numpy():
    x = _rows((6, 10), seed=5).numpy()
    rng = np.random.default_rng(6)
    gamma, beta = rng.normal(size=10), rng.normal(size=10)
    y = op_module.tebd_layer_norm(x, gamma, np.float64(1e-3), beta).numpy()
    c = x - x.mean(axis=-1, keepdims=True)
    expected = c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-3) * gamma + beta
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


def test_layer_norm_third_derivative_and_other_shapes_are_refused():
    x = _rows((2, 4))
    gamma, beta, eps = tf.ones([4], x.dtype), tf.zeros([4], x.dtype), tf.constant(1e-3, x.dtype)
    with pytest.raises(LookupError, match="not three times"):
        _third_derivative(
            lambda x: tf.reduce_sum(op_module.tebd_layer_norm(x, gamma, eps, beta) ** 3), x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="gamma has shape"):
        op_module.tebd_layer_norm(x, tf.ones([3], x.dtype), eps, beta)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 3 has shape"):
        op_module.tebd_layer_norm_grad(x, gamma, eps, tf.ones([4, 2], x.dtype))
