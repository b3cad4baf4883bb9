"""The fused embedding net of the training step (TebdEmbeddingNet and its gradient op) computes
what TensorFlow's own ops compute for the same net: the output, its derivative along s, and the
gradients of a loss of both (the force loss's second-order weight gradients), for every resnet
rule, in float64 and float32; a NumPy forward pass agrees too."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.kernels import fusable, net_stack, scalar_net, training_kernels
from deepmd_tebd.model.network import MLP
from deepmd_tebd.op import op_module


def _net(widths, precision="float64", in_width=9, **kwargs):
    net = MLP(widths, precision=precision, seed=3, **kwargs)
    net.build((None, in_width))
    return net


def _inputs(rows, width, ntable=5, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    s = tf.constant(rng.uniform(-0.5, 1.5, rows).astype(dtype))
    index = tf.constant(rng.integers(0, ntable, rows).astype(np.int32))
    table = tf.constant(rng.normal(size=(ntable, width)).astype(dtype))
    slope = tf.constant(rng.normal(size=width).astype(dtype))
    return s, index, table, slope


def _second_order(net, s, index, table, slope, fused):
    """g, dE/ds and the gradients of a force-like loss L = E + sum(sin(dE/ds) c) with respect to
    table, slope and the net's layers after the first, E = sum(g v)."""
    rng = np.random.default_rng(1)
    v = tf.constant(rng.normal(size=(s.shape[0], net.out_width)), s.dtype)
    c = tf.constant(rng.normal(size=s.shape[0]), s.dtype)
    weights = [x for layer in net.layer_variables()[0][1:] for x in layer if x is not None]

    def step(s, table, slope):
        with tf.GradientTape() as outer:
            outer.watch([table, slope])
            with tf.GradientTape() as inner:
                inner.watch(s)
                g = scalar_net(net, s, index, table, slope)
                energy = tf.reduce_sum(g * v)
            de_ds = inner.gradient(energy, s)
            loss = energy + tf.reduce_sum(tf.sin(de_ds) * c)
        grads = outer.gradient(loss, [table, slope] + weights)
        return [g, de_ds] + [tf.convert_to_tensor(x) for x in grads]

    if fused:
        with training_kernels():
            function = tf.function(step).get_concrete_function(s, table, slope)
        assert any(op.type == "TebdEmbeddingNet" for op in function.graph.get_operations())
    else:
        function = tf.function(step).get_concrete_function(s, table, slope)
    return [x.numpy() for x in function(s, table, slope)]


@pytest.mark.parametrize("resnet_dt", [False, True], ids=["", "resnet_dt"])
@pytest.mark.parametrize("widths", [[6, 12, 24], [8, 8, 8], [7, 5, 10], [16]],
                         ids=["concat", "skip", "plain_then_concat", "one_layer"])
def test_fused_net_and_its_two_gradients_equal_tensorflows_ops(widths, resnet_dt):
    net = _net(widths, resnet_dt=resnet_dt)
    s, index, table, slope = _inputs(300, widths[0])
    want = _second_order(net, s, index, table, slope, fused=False)
    got = _second_order(net, s, index, table, slope, fused=True)
    names = ["g", "dE/ds", "table", "slope"] + [f"layer {k}" for k in range(len(got) - 4)]
    for name, x, y in zip(names, got, want):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max(), err_msg=name)


def test_fused_net_in_float32_equals_tensorflows_ops():
    net = _net([8, 16, 32], precision="float32")
    s, index, table, slope = _inputs(200, 8, dtype=np.float32)
    want = _second_order(net, s, index, table, slope, fused=False)
    got = _second_order(net, s, index, table, slope, fused=True)
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5 * np.abs(y).max())


def test_fused_net_equals_a_numpy_forward_pass_and_its_finite_difference():
    net = _net([6, 12, 12])  # concat, then skip
    s, index, table, slope = _inputs(50, 6)
    hidden, _ = net.layer_variables()
    weights = [(w.numpy(), b.numpy()) for w, b, _ in hidden[1:]]

    def numpy_net(s_values):
        h = np.tanh(s_values[:, None] * slope.numpy() + table.numpy()[index.numpy()])
        for w, b in weights:
            y = np.tanh(h @ w + b)
            h = y + (np.concatenate([h, h], axis=1) if w.shape[1] == 2 * w.shape[0] else h)
        return h

    g, dg, _ = op_module.tebd_embedding_net(s, index, table, slope, [w for w, _ in weights],
                                         [b for _, b in weights],
                                         [np.ones_like(b) for _, b in weights],
                                         tf.range(s.shape[0]), rules=[2, 1])
    np.testing.assert_allclose(g.numpy(), numpy_net(s.numpy()), rtol=1e-13, atol=1e-13)
    eps = 1e-6
    fd = (numpy_net(s.numpy() + eps) - numpy_net(s.numpy() - eps)) / (2 * eps)
    np.testing.assert_allclose(dg.numpy(), fd, rtol=1e-7, atol=1e-8)


def test_fused_net_of_no_rows_gives_empty_outputs_and_zero_weight_gradients():
    net = _net([4, 8])
    s, index, table, slope = _inputs(0, 4)
    got = _second_order(net, s, index, table, slope, fused=True)
    assert got[0].shape == (0, 8) and got[1].shape == (0,)
    for grad in got[2:]:
        assert not grad.any()


def test_fused_net_refuses_an_index_outside_the_table():
    net = _net([4, 8])
    s, _, table, slope = _inputs(3, 4, ntable=2)
    w, b, _ = net.layer_variables()[0][1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the table's 2 rows"):
        op_module.tebd_embedding_net(s, tf.constant([0, 2, 1]), table, slope, [w], [b],
                                     [tf.ones_like(b)], tf.range(3), rules=[2])


def test_fused_net_has_no_third_derivative_and_says_so():
    net = _net([4, 8])
    s, index, table, slope = _inputs(10, 4)

    def third(s, table):
        with tf.GradientTape() as t3:
            t3.watch(table)
            with tf.GradientTape() as t2:
                t2.watch(table)
                with tf.GradientTape() as t1:
                    t1.watch(s)
                    energy = tf.reduce_sum(scalar_net(net, s, index, table, slope))
                loss = tf.reduce_sum(t1.gradient(energy, s) ** 2)
            d2 = tf.reduce_sum(t2.gradient(loss, table) ** 2)
        return t3.gradient(d2, table)

    with training_kernels(), pytest.raises(LookupError, match="not three times"):
        tf.function(third, autograph=False).get_concrete_function(s, table)


def test_only_tanh_nets_without_mixed_precision_are_fused():
    with training_kernels():
        assert fusable(_net([4, 8]))
        assert fusable(_net([4, 8], resnet_dt=True))
        assert not fusable(_net([4, 8], activation="gelu"))
        assert not fusable(_net([4, 8], compute_precision="float32"))
        assert not fusable(_net([9, 8]))  # the first layer is residual (9 -> 9)
    assert not fusable(_net([4, 8]))  # outside the training step


def _stack_second_order(nets, s, index, fused):
    """g, dE/ds and the gradients of the force-like loss of `_second_order` with respect to
    every weight of every net, for rows s whose net is index (kernels.net_stack)."""
    rng = np.random.default_rng(1)
    v = tf.constant(rng.normal(size=(s.shape[0], nets[0].out_width)), s.dtype)
    c = tf.constant(rng.normal(size=s.shape[0]), s.dtype)
    weights = [x for net in nets for layer in net.layer_variables()[0] for x in layer
               if x is not None]

    def step(s):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(s)
                if fused:
                    g = net_stack(nets)(s, index)
                else:  # every net on every row, then each row's own net
                    every = tf.stack([net(s[:, None]) for net in nets])  # [K, rows, width]
                    g = tf.gather_nd(every, tf.stack([index, tf.range(s.shape[0])], axis=1))
                energy = tf.reduce_sum(g * v)
            de_ds = inner.gradient(energy, s)
            loss = energy + tf.reduce_sum(tf.sin(de_ds) * c)
        grads = outer.gradient(loss, weights)
        return [g, de_ds] + [tf.zeros_like(w) if x is None else tf.convert_to_tensor(x)
                             for w, x in zip(weights, grads)]

    if fused:
        with training_kernels():
            function = tf.function(step).get_concrete_function(s)
        nets_ops = [op for op in function.graph.get_operations()
                    if op.type == "TebdEmbeddingNet"]
        assert len(nets_ops) == 1
    else:
        function = tf.function(step).get_concrete_function(s)
    return [x.numpy() for x in function(s)]


@pytest.mark.parametrize("resnet_dt", [False, True], ids=["", "resnet_dt"])
@pytest.mark.parametrize("widths", [[6, 12, 24], [8, 8], [5]], ids=["concat", "skip", "one_layer"])
def test_a_stack_of_nets_in_one_op_equals_each_net_on_its_own_rows(widths, resnet_dt):
    """kernels.net_stack: K per-type nets (in width 1) in one TebdEmbeddingNet, each row
    through the net its index names, rows of the nets interleaved, one net without rows:
    outputs, dE/ds and the second-order gradients of every net's weights equal TensorFlow's
    ops on each net (1e-12)."""
    nets = [MLP(widths, precision="float64", seed=7 + k, resnet_dt=resnet_dt) for k in range(4)]
    for net in nets:
        net.build((None, 1))
    rng = np.random.default_rng(2)
    rows = 700  # several blocks of 128 rows for some nets
    s = tf.constant(rng.uniform(-0.5, 1.5, rows))
    index = tf.constant(rng.choice([0, 1, 3], size=rows, p=[0.6, 0.3, 0.1]).astype(np.int32))
    want = _stack_second_order(nets, s, index, fused=False)
    got = _stack_second_order(nets, s, index, fused=True)
    for k, (x, y) in enumerate(zip(got, want)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * max(np.abs(y).max(), 1e-300),
                                   err_msg=f"output {k}")
    # net 2 has no rows: its weight gradients are zeros
    per_net = (len(got) - 2) // len(nets)
    for grad in got[2 + 2 * per_net:2 + 3 * per_net]:
        assert not grad.any()


def test_a_stack_refuses_a_table_that_does_not_split_into_its_nets():
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(3, 4, 8)))
    b = tf.constant(rng.normal(size=(3, 8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[K \* P, width\]"):
        op_module.tebd_embedding_net(tf.constant([0.1, 0.2], tf.float64), tf.constant([0, 1]),
                                     tf.constant(rng.normal(size=(4, 4))),
                                     tf.constant(rng.normal(size=(3, 4))), [w], [b],
                                     [tf.ones_like(b)], tf.range(2), rules=[0])


def _op_second_order(net, s, index, table, slope, source, tape=True):
    """g, dg/ds of TebdEmbeddingNet on the rows `source` names, and the gradients of
    L = <g, v> + <dg/ds, w> with respect to s, table, slope and the layers after the first, by
    TebdEmbeddingNetGrad (tape: from the forward op's tape; False: recomputed)."""
    layers = [(w, b, tf.ones_like(b)) for w, b, _ in net.layer_variables()[0][1:]]
    mats, biases, steps = ([x[k] for x in layers] for k in range(3))
    g, dg, kept = op_module.tebd_embedding_net(s, index, table, slope, mats, biases, steps,
                                              source, rules=[2] * len(layers))
    rng = np.random.default_rng(4)
    v = tf.constant(rng.normal(size=g.shape), g.dtype)
    w = tf.constant(rng.normal(size=g.shape), g.dtype)
    grads = op_module.tebd_embedding_net_grad(
        s, index, table, slope, mats, biases, steps, source,
        kept if tape else tf.zeros([0], g.dtype), tf.zeros([0, 4], g.dtype),
        tf.zeros([0, 4, g.shape[1]], g.dtype), tf.zeros([0], tf.int32),
        tf.zeros([0, 4], g.dtype), tf.zeros([0], g.dtype), tf.zeros([0, 4, g.shape[1]], g.dtype),
        v, w, rules=[2] * len(layers))
    return [g.numpy(), dg.numpy()] + [tf.convert_to_tensor(x).numpy() for x in
                                      tf.nest.flatten(tuple(grads))]


def test_rows_named_by_several_outputs_are_computed_once_and_their_gradients_summed():
    """TebdEmbeddingNet's source: outputs that name one row equal that row computed for each
    of them (1e-13), and the weight gradients are those of the rows computed one by one
    (1e-12); the named row's s gradient is the sum over its outputs, a row no output names
    gets 0."""
    net = _net([4, 8, 16])
    s, index, table, slope = _inputs(300, 4)
    rng = np.random.default_rng(5)
    source = rng.integers(0, 200, 400).astype(np.int32)  # rows 200.. unnamed, some many times
    one_by_one = _op_second_order(net, tf.gather(s, source), tf.gather(index, source), table,
                                  slope, tf.range(400))
    shared = _op_second_order(net, s, index, table, slope, tf.constant(source))
    for x, y in zip(shared[:2], one_by_one[:2]):  # other blocks: round-off of the products
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-13)
    summed = np.zeros(300)
    np.add.at(summed, source, one_by_one[2])
    np.testing.assert_allclose(shared[2], summed, rtol=1e-12, atol=1e-12)
    assert not shared[2][200:].any()
    for k, (x, y) in enumerate(zip(shared[3:], one_by_one[3:])):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max(),
                                   err_msg=f"weight gradient {k}")


def test_the_gradient_from_the_forward_tape_equals_the_gradient_computed_again():
    """TebdEmbeddingNetGrad with the forward op's tape and with an empty tape (the forward
    computed again block by block): the same numbers, bit for bit; a tape of other inputs is
    refused."""
    net = _net([4, 8, 16])
    s, index, table, slope = _inputs(300, 4)
    source = tf.range(300)
    with_tape = _op_second_order(net, s, index, table, slope, source, tape=True)
    again = _op_second_order(net, s, index, table, slope, source, tape=False)
    for x, y in zip(with_tape, again):
        np.testing.assert_array_equal(x, y)
    w, b, _ = net.layer_variables()[0][1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="tape must be"):
        op_module.tebd_embedding_net_grad(s, index, table, slope, [w], [b], [tf.ones_like(b)],
                                          source, tf.zeros([5], tf.float64),
                                          tf.zeros([0, 4], tf.float64),
                                          tf.zeros([0, 4, 8], tf.float64),
                                          tf.zeros([0], tf.int32),
                                          tf.zeros([0, 4], tf.float64),
                                          tf.zeros([0], tf.float64),
                                          tf.zeros([0, 4, 8], tf.float64),
                                          tf.zeros([300, 8], tf.float64),
                                          tf.zeros([300, 8], tf.float64), rules=[2])
