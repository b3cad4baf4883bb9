"""The fused embedding net with its contraction A = R~^T G per atom (TebdEmbeddingContract, its
force pass TebdContractRowsGrad and that op's gradient) computes what TensorFlow's ops compute
for the net and a batched product: A, the force-like derivative with respect to the rows, the
second-order gradients of a force loss with respect to every weight, and the second derivative
with respect to the rows, for one net and for a stack, with empty slots computed once as shared
rows (whose own s is then a constant) and with contraction groups (one A per atom and group); a
third derivative is refused, and so are rows that do not split into atoms."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.kernels import (net_contraction, net_stack, scalar_net, scalar_rows,
                                       training_kernels)
from deepmd_tebd.model.network import MLP
from deepmd_tebd.op import op_module

ATOMS, SLOTS = (2, 5), 7  # frames x atoms, slots per atom


def _rows(seed=0, empty=0.0):
    """rows [2, 5, 7, 4] whose last slots of some atoms are empty: the row (-0.3, 0.1, 0, 0.2)
    of their centre type (atom % 2); the empty mask [2, 5, 7]."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=ATOMS + (SLOTS, 4))
    rows[..., 0] = rng.uniform(-0.2, 1.5, ATOMS + (SLOTS,))
    filled = rng.integers(3, SLOTS + 1, ATOMS)
    mask = np.arange(SLOTS)[None, None, :] >= filled[..., None]
    constant = np.array([[-0.3, 0.1, 0.0, 0.2], [0.25, 0.0, -0.1, 0.05]])
    centre = np.arange(ATOMS[1]) % 2
    rows[mask] = np.broadcast_to(constant[centre][None, :, None, :], rows.shape)[mask]
    return tf.constant(rows), mask, constant


def _shared(mask, constant, index_of_centre):
    """scalar_net's shared for the empty slots: one row per (centre type, slot)."""
    centre = np.arange(ATOMS[1]) % 2
    pick = np.where(mask, centre[None, :, None] * SLOTS + np.arange(SLOTS), -1).astype(np.int32)
    s_shared = np.repeat(constant[:, 0], SLOTS)
    return (tf.constant(s_shared), tf.constant(index_of_centre(np.arange(2))),
            tf.constant(pick))


def _own_s(rows, mask):
    """s = rows[..., 0] where a row is computed from its own s; a constant (no gradient) for the
    copies of a shared row (mask), whose s the fused op does not read."""
    s = rows[..., 0]
    return s if mask is None else tf.where(tf.constant(mask), tf.stop_gradient(s), s)


def _derivatives(contraction, rows, variables, fused):
    """A, dE/drows, the gradients of L = E + sum(sin(dE/drows) c) with respect to `variables`,
    and d/drows <dE/drows, w> (the second derivative along w), E = sum(A v)."""
    rng = np.random.default_rng(1)
    v = tf.constant(rng.normal(size=ATOMS + (4, 16)))
    c = tf.constant(rng.normal(size=rows.shape))
    w = tf.constant(rng.normal(size=rows.shape))

    def step(rows):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(rows)
            with tf.GradientTape() as inner:
                inner.watch(rows)
                a = contraction(rows)
                energy = tf.reduce_sum(a * v)
            de_dr = inner.gradient(energy, rows)
            loss = energy + tf.reduce_sum(tf.sin(de_dr) * c)
            along = tf.reduce_sum(de_dr * w)
        grads = outer.gradient(loss, variables)
        return [a, de_dr] + [tf.convert_to_tensor(x) for x in grads] + [
            outer.gradient(along, rows)]

    if fused:
        with training_kernels():
            function = tf.function(step).get_concrete_function(rows)
        types = {op.type for op in function.graph.get_operations()}
        assert {"TebdEmbeddingContract", "TebdContractRowsGrad",
                "TebdContractRowsGradGrad"} <= types
    else:
        function = tf.function(step).get_concrete_function(rows)
    return [x.numpy() for x in function(rows)]


def _compare(got, want):
    for k, (x, y) in enumerate(zip(got, want)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * max(np.abs(y).max(), 1e-300),
                                   err_msg=f"output {k}")


@pytest.mark.parametrize("shared", [False, True], ids=["", "shared_empty_rows"])
def test_one_net_and_its_contraction_equal_tensorflows_ops(shared):
    net = MLP([4, 8, 16], precision="float64", seed=3)
    net.build((None, 3))
    rng = np.random.default_rng(2)
    table = tf.Variable(rng.normal(size=(6, 4)))
    slope = tf.Variable(rng.normal(size=4))
    rows, mask, constant = _rows()
    centre = np.arange(ATOMS[1]) % 2
    slot_type = np.arange(SLOTS) % 3

    def index_of(centres):  # (centre type, slot type) pairs of a two-side table
        return (np.asarray(centres)[..., None] * 3 + slot_type).astype(np.int32)

    index = tf.constant(np.broadcast_to(index_of(centre)[None], ATOMS + (SLOTS,)))
    share = _shared(mask, constant, index_of) if shared else None
    weights = [table, slope] + [x for layer in net.layer_variables()[0][1:] for x in layer
                                if x is not None]

    def fused(rows):
        return net_contraction(net, rows, index, table, slope, share)

    def unfused(rows):
        g = scalar_net(net, _own_s(rows, mask if shared else None), index, table, slope)
        return tf.linalg.matmul(rows, g, adjoint_a=True)

    _compare(_derivatives(fused, rows, weights, fused=True),
             _derivatives(unfused, rows, weights, fused=False))


def test_a_stack_of_nets_and_its_contraction_equal_each_net_on_its_rows():
    nets = [MLP([4, 8, 16], precision="float64", seed=7 + k, resnet_dt=True) for k in range(3)]
    for net in nets:
        net.build((None, 1))
    rows, mask, constant = _rows(seed=4)
    centre = np.arange(ATOMS[1]) % 2

    def index_of(centres):  # the net of each (centre type, slot): 0..2
        return ((np.asarray(centres)[..., None] + np.arange(SLOTS)) % 3).astype(np.int32)

    index = np.broadcast_to(index_of(centre)[None], ATOMS + (SLOTS,))
    share = _shared(mask, constant, index_of)
    weights = [x for net in nets for layer in net.layer_variables()[0] for x in layer
               if x is not None]

    def fused(rows):
        return net_stack(nets).contraction(rows, tf.constant(index), share)

    def unfused(rows):  # every net on every row, then each row's own net
        s = _own_s(rows, mask)[..., None]
        every = tf.stack([net(s) for net in nets], axis=-2)  # [..., n, K, 16]
        g = tf.gather(every, tf.constant(index), batch_dims=3)
        return tf.linalg.matmul(rows, g, adjoint_a=True)

    _compare(_derivatives(fused, rows, weights, fused=True),
             _derivatives(unfused, rows, weights, fused=False))


@pytest.mark.parametrize("shared", [False, True], ids=["", "shared_empty_rows"])
def test_contraction_groups_give_each_group_its_own_contraction(shared):
    """With contraction groups (rows of an atom in any order of groups, runs of one row too)
    sum_q A_q * S_q equals R~^T (G * S[group]) in TensorFlow's ops, with every derivative."""
    net = MLP([4, 8, 16], precision="float64", seed=5, resnet_dt=True)
    net.build((None, 1))
    rows, mask, constant = _rows(seed=6)
    k = 3
    rng = np.random.default_rng(8)
    group = tf.constant(rng.integers(0, k, ATOMS + (SLOTS,)), tf.int32)
    scale = tf.Variable(rng.normal(size=(k, 16)))
    copies = None
    if shared:
        s_shared, _, pick = _shared(mask, constant, lambda centres: np.zeros(
            np.shape(centres) + (SLOTS,), np.int32))
        copies = (s_shared, pick)
    weights = [scale] + [x for layer in net.layer_variables()[0] for x in layer
                         if x is not None]

    def fused(rows):
        a = net_contraction(net, rows, *scalar_rows(net, copies), groups=(group, k))
        return tf.reduce_sum(a * scale[:, None, :], axis=-3)

    def unfused(rows, mask):
        g = net(_own_s(rows, mask)[..., None])
        return tf.linalg.matmul(rows, g * tf.gather(scale, group), adjoint_a=True)

    _compare(_derivatives(fused, rows, weights, fused=True),
             _derivatives(lambda r: unfused(r, mask if shared else None), rows, weights,
                          fused=False))
    # off the training kernels: the groups' contractions in TensorFlow's ops, every row
    # computed from its own s
    _compare(_derivatives(fused, rows, weights, fused=False),
             _derivatives(lambda r: unfused(r, None), rows, weights, fused=False))
    with training_kernels(), pytest.raises(tf.errors.InvalidArgumentError,
                                           match=r"group must be one entry per row in \[0, 2\)"):
        net_contraction(net, rows, *scalar_rows(net), groups=(group, 2))


def test_the_fused_contraction_has_no_third_derivative_and_says_so():
    net = MLP([4, 8], precision="float64", seed=3)
    net.build((None, 1))
    rows, _, _ = _rows()
    table = tf.Variable(np.ones((1, 4)))
    slope = tf.Variable(np.ones(4))

    def third(rows):
        with tf.GradientTape() as t3:
            t3.watch(table)
            with tf.GradientTape() as t2:
                t2.watch(table)
                with tf.GradientTape() as t1:
                    t1.watch(rows)
                    energy = tf.reduce_sum(net_contraction(net, rows, 0, table, slope) ** 2)
                loss = tf.reduce_sum(t1.gradient(energy, rows) ** 2)
            d2 = tf.reduce_sum(t2.gradient(loss, table) ** 2)
        return t3.gradient(d2, table)

    with training_kernels(), pytest.raises(LookupError, match="not three times"):
        tf.function(third, autograph=False).get_concrete_function(rows)


def test_the_contraction_refuses_rows_that_do_not_split_into_its_atoms():
    net = MLP([4, 8], precision="float64", seed=3)
    net.build((None, 1))
    w, b, _ = net.layer_variables()[0][1]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rows must be \[atoms \* slots"):
        op_module.tebd_embedding_contract(
            tf.zeros([7, 4], tf.float64), tf.zeros([7], tf.int32), tf.zeros([1, 4], tf.float64),
            tf.zeros([4], tf.float64), [w], [b], [tf.ones_like(b)], tf.range(7),
            tf.zeros([0], tf.float64), tf.constant(2), tf.zeros([0], tf.int32), rules=[2])
