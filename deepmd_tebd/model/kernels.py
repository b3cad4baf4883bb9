"""The training step's own kernels on the CPU, and TensorFlow's ops everywhere else:

* the batched matrix products of the descriptors (DPA-1's attention, and the contraction R~^T G
  of every descriptor): TebdBatchMatMul (op/tf/batch_mat_mul.cc: one dense product per matrix
  over the CPU threads, two to three times as fast as BatchMatMulV2 for these [S, S], [S, d]
  and [S, 4] matrices);
* the attention's L2 and layer normalisations: TebdL2Normalize and TebdLayerNorm
  (op/tf/l2_normalize.cc, op/tf/layer_norm.cc: one pass over the rows for the value and for each
  of its two derivatives);
* the nets' matrix products: TebdMatMul (op/tf/batch_mat_mul.cc: TensorFlow's MatMul on
  OpenBLAS, one piece of rows per CPU thread, about 1.4x as fast in float64);
* the embedding nets of rows that vary in one scalar s~ (every tanh net whose first layer has
  no residual connection): TebdEmbeddingNet (op/tf/embedding_net.cc), which gives the net's
  output and its derivative along s~ in one pass, so that neither the force nor the force
  loss's weight gradient goes back through the net's layers op by op; the per-type nets of a
  descriptor without type embedding run as one stack in one such op (`net_stack`); with
  their contraction with the environment matrix, A = R~^T G: TebdEmbeddingContract, whose
  force pass (TebdContractRowsGrad) reads G and dG/ds~ once and writes nothing of their size.

Frozen graphs therefore hold TensorFlow's ops only (BatchMatMulV2, MatMul, Tanh, ...), which
every TensorFlow runtime (DeePMD-kit's C++ interface, LAMMPS) has.

    with training_kernels():          # while the training step is traced
        z = batch_matmul(x, y, adjoint_b=True)
        h = matmul(x, w)
        q = l2_normalize(h)
        y = layer_norm(x, gamma, beta, eps)
        a = contract(rows, g)         # rows^T g per atom
        g = scalar_net(net, s, index, table, slope)
        a = net_contraction(net, rows, index, table, slope)  # rows^T g, s = rows[..., 0]
        a = net_contraction(net, rows, index, table, slope, groups=(group, k))  # per group
        g = net_stack(nets)(s, index)  # index: the net of each row
        a = net_stack(nets).contraction(rows, index)
"""
from __future__ import annotations

import contextlib
import threading

import tensorflow as tf

__all__ = ["NetStack", "batch_matmul", "contract", "fusable", "l2_normalize", "layer_norm",
           "matmul", "net_contraction", "net_stack", "scalar_net", "scalar_rows",
           "training_kernels", "training_step"]

_STATE = threading.local()


@contextlib.contextmanager
def training_kernels():
    """Within it (while a graph is traced), batch_matmul uses TebdBatchMatMul when no GPU is
    visible."""
    before = training_step()
    _STATE.training = not tf.config.list_logical_devices("GPU")
    try:
        yield
    finally:
        _STATE.training = before


def training_step() -> bool:
    """Whether the training step is being traced on the CPU (`training_kernels`): the kernels
    here, and the descriptors' paths that frozen graphs do not take (se_atten.py's live
    slots)."""
    return getattr(_STATE, "training", False)


def _ops():
    from ..op import op_module  # on use: importing this module loads no op library

    return op_module


def batch_matmul(x, y, adjoint_a: bool = False, adjoint_b: bool = False):
    """op(x) op(y) of rank-3 real tensors of one batch size (op: transpose where adjoint)."""
    if training_step():
        return _ops().tebd_batch_mat_mul(x, y, adj_x=adjoint_a, adj_y=adjoint_b)
    return tf.linalg.matmul(x, y, adjoint_a=adjoint_a, adjoint_b=adjoint_b)


def matmul(x, y):
    """x y of two matrices."""
    if training_step():
        return _ops().tebd_mat_mul(x, y)
    return tf.linalg.matmul(x, y)


def l2_normalize(x):
    """x / sqrt(max(sum x^2, 1e-12)) over the last axis (tf.math.l2_normalize)."""
    if training_step():
        return _ops().tebd_l2_normalize(x)
    return tf.math.l2_normalize(x, -1)


def layer_norm(x, gamma, beta, eps: float):
    """(x - mean) rsqrt(var + eps) gamma + beta over the last axis (mean and variance of it)."""
    if training_step():
        return _ops().tebd_layer_norm(x, gamma, tf.constant(eps, x.dtype), beta)
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    var = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + eps) * gamma + beta


def contract(rows, g):
    """rows^T g over the neighbour axis, per atom: rows [..., n, 4] and g [..., n, M] of the same
    leading shape -> [..., 4, M]."""
    if not training_step():
        return tf.linalg.matmul(rows, g, adjoint_a=True)
    if rows.shape.rank == 3:
        return batch_matmul(rows, g, adjoint_a=True)
    shape = tf.shape(rows)
    lead, n = shape[:-2], shape[-2]
    # not -1, which an empty tensor cannot resolve (no atoms of a centre type and n = 0)
    batch = tf.reduce_prod(lead)
    z = batch_matmul(tf.reshape(rows, tf.stack([batch, n, tf.shape(rows)[-1]])),
                     tf.reshape(g, tf.stack([batch, n, tf.shape(g)[-1]])), adjoint_a=True)
    return tf.reshape(z, tf.concat([lead, tf.shape(z)[1:]], axis=0))


def fusable(net) -> bool:
    """Whether the training step runs `net` (a model/network.py MLP) on TebdEmbeddingNet: an
    embedding net of tanh layers with biases, no mixed precision and no residual first layer,
    while the training step is traced on the CPU."""
    hidden, final = net.layer_variables()
    return (training_step() and net.kind == "embedding"
            and net.activation == "tanh" and net.compute_precision is None and final is None
            and bool(net.rules) and net.rules[0] is None
            and all(b is not None for _, b, _ in hidden)
            and net.matmul_dtype in (tf.float32, tf.float64))


_RULES = {None: 0, "skip": 1, "concat": 2}


def scalar_net(net, s, index, table, slope, shared=None):
    """The embedding net `net` on rows [s_i, fixed_i] whose first pre-activation is
    s_i * slope + table[index_i] (table [K, widths[0]]: the fixed parts times their rows of the
    first matrix, plus its bias; slope [widths[0]]: the first matrix's row of s): s and index
    [...] (index int32) -> [..., out_width]. On TebdEmbeddingNet where `fusable(net)`.

    shared: None, or (s_shared [k], index_shared [k], pick [...] int32) for rows that are
    copies of a constant row: where pick >= 0, the row's s and index equal those of shared row
    pick (the caller's promise: the empty neighbour slots, whose s is -davg/dstd), and the
    fused op computes that row once for all its copies, whose own s it does not read (a
    constant: no gradient). Off the fused path every row is computed as it is."""
    dtype = net.matmul_dtype
    s, table, slope = tf.cast(s, dtype), tf.cast(table, dtype), tf.cast(slope, dtype)
    if not fusable(net):
        pre = s[..., None] * slope + tf.gather(table, index)
        return net(None, first_preactivation=pre)
    with tf.name_scope(net.name):  # the net's scope, as its unfused ops (bench/step_profile.py)
        g = _embedding_net_op(s, index, table, slope, _layers(net, dtype), _attrs(net),
                              shared)
    return tf.cast(g, net.compute_dtype)


def scalar_rows(net, shared=None):
    """scalar_net's (index, table, slope, shared) for a net of width-1 rows [s], whose first
    pre-activation is s W_1 + b_1; shared (s_shared [k], pick [...]) or None: its shared rows,
    every one of index 0."""
    w, b = net.split_first_layer([1])
    if shared is not None:
        s_shared, pick = shared
        shared = (s_shared, tf.zeros_like(s_shared, tf.int32), pick)
    return tf.constant(0), b[None], w[0][0], shared


def net_contraction(net, rows, index, table, slope, shared=None, groups=None):
    """rows^T G per atom, G the net on rows [..., n, 4] of an environment matrix whose s~
    (rows[..., 0]) is its scalar input (index, table, slope and shared: scalar_net's):
    [..., 4, out_width]. Where `fusable(net)` one TebdEmbeddingContract, whose force pass
    (TebdContractRowsGrad) writes no matrix of G's size.

    groups: None, or (group [..., n] int32 in [0, k), k): then one contraction per group,
    [..., k, 4, out_width], entry q over the rows of group q."""
    if not fusable(net):
        g = scalar_net(net, rows[..., 0], index, table, slope)
        return contract(rows, g) if groups is None else _grouped_contraction(rows, g, *groups)
    dtype = net.matmul_dtype
    with tf.name_scope(net.name):  # the net's scope, as its unfused ops (bench/step_profile.py)
        a = _contraction_op(tf.cast(rows, dtype), index, tf.cast(table, dtype),
                            tf.cast(slope, dtype), _layers(net, dtype), _attrs(net), shared,
                            groups)
    return tf.cast(a, rows.dtype)


def _grouped_contraction(rows, g, group, k: int):
    """rows^T g per atom and group (net_contraction's `groups`) in TensorFlow's ops:
    [..., k, 4, M]."""
    picked = tf.one_hot(group, k, dtype=rows.dtype)  # [..., n, k]
    by_group = picked[..., :, :, None] * rows[..., :, None, :]  # [..., n, k, 4]
    lead = tf.shape(rows)[:-2]
    flat = tf.reshape(by_group, tf.concat([lead, [tf.shape(rows)[-2], 4 * k]], axis=0))
    a = contract(flat, g)  # [..., 4k, M]
    return tf.reshape(a, tf.concat([lead, [k, 4, tf.shape(g)[-1]]], axis=0))


class NetStack:
    """K embedding nets of one scalar input and the same widths (the per-type nets of a
    descriptor without type embedding, every one `fusable`) as one stack (`net_stack`): row i
    goes through nets[index[i]] (index int32 in [0, K)). The weights are stacked once, however
    many times the stack runs."""

    def __init__(self, nets):
        self.nets = nets
        self.dtype = dtype = nets[0].matmul_dtype
        with tf.name_scope("filter_type_nets"):  # an embedding-net scope (step_profile.py)
            firsts = [mlp.layer_variables()[0][0] for mlp in nets]  # W_1 [1, width], b_1
            self.slope = tf.stack([tf.reshape(tf.cast(w, dtype), [-1]) for w, _, _ in firsts])
            self.table = tf.stack([tf.cast(b, dtype) for _, b, _ in firsts])
            # (W, b, timestep) of each later layer, each with a leading net axis
            self.layers = [tuple(tf.stack(parts) for parts in zip(*per_net))
                           for per_net in zip(*(_layers(mlp, dtype) for mlp in nets))]
        self.attrs = _attrs(nets[0], any(_has_timesteps(mlp) for mlp in nets))

    def __call__(self, s, index, shared=None):
        """The stack on s and index [...] (shared: as scalar_net's) -> [..., out_width], in
        one TebdEmbeddingNet."""
        with tf.name_scope("filter_type_nets"):
            g = _embedding_net_op(tf.cast(s, self.dtype), index, self.table, self.slope,
                                  self.layers, self.attrs, shared)
        return tf.cast(g, self.nets[0].compute_dtype)

    def contraction(self, rows, index, shared=None):
        """rows^T G per atom for rows [..., n, 4] (net_contraction's) -> [..., 4, out_width],
        in one TebdEmbeddingContract."""
        with tf.name_scope("filter_type_nets"):
            a = _contraction_op(tf.cast(rows, self.dtype), index, self.table, self.slope,
                                self.layers, self.attrs, shared)
        return tf.cast(a, rows.dtype)


def net_stack(nets) -> NetStack:
    """The nets as one `NetStack`."""
    return NetStack(nets)


def _has_timesteps(net) -> bool:
    """Whether any layer after the first of a fusable net has a timestep (resnet_dt)."""
    return any(idt is not None for _, _, idt in net.layer_variables()[0][1:])


def _attrs(net, resnet_dt=None) -> dict:
    """The fused ops' attributes for a fusable net: rules (each layer's resnet rule after the
    first) and resnet_dt (`_has_timesteps`; given: for a stack of nets)."""
    return {"rules": [_RULES[r] for r in net.rules[1:]],
            "resnet_dt": _has_timesteps(net) if resnet_dt is None else resnet_dt}


def _layers(net, dtype) -> list:
    """(W, b, timestep) of each layer after the first of a fusable net, in dtype; the timestep
    is resnet_dt's, ones where a layer has none."""
    return [(tf.cast(w, dtype), tf.cast(b, dtype),
             tf.ones([w.shape[-1]], dtype) if idt is None
             else tf.reshape(tf.cast(idt, dtype), [-1]))
            for w, b, idt in net.layer_variables()[0][1:]]


def _candidates(lead, index, shared):
    """The ops' candidate rows for outputs of shape `lead`: (index of the outputs' own rows,
    then of the shared rows; source [size of lead], each output's row; the shared rows' s or
    None), for index [...] broadcast to lead and scalar_net's shared."""
    index = tf.reshape(tf.broadcast_to(index, lead), [-1])
    own = tf.reduce_prod(lead)
    source = tf.range(own, dtype=tf.int32)
    if shared is None:
        return index, source, None
    s_shared, index_shared, pick = shared
    pick = tf.reshape(tf.broadcast_to(pick, lead), [-1])
    source = tf.where(pick >= 0, own + pick, source)
    return (tf.concat([index, tf.reshape(index_shared, [-1])], axis=0), source,
            tf.reshape(s_shared, [-1]))


def _weights(layers):
    """The layers' matrices, biases and timesteps as the ops' three lists."""
    return [w for w, _, _ in layers], [b for _, b, _ in layers], [t for _, _, t in layers]


def _embedding_net_op(s, index, table, slope, layers, attrs, shared=None):
    """TebdEmbeddingNet on s and index [...]: one net (slope [width], layers (W, b, timestep)
    of `_layers`) or a stack of nets (slope [K, width], each layer's tensors with a leading net
    axis); attrs: `_attrs`'s; shared: scalar_net's (the shared rows go after the rows, and the
    op's source sends each copy to its shared row)."""
    lead = tf.shape(s)
    index, source, s_shared = _candidates(lead, index, shared)
    s = tf.reshape(s, [-1])
    if s_shared is not None:
        s = tf.concat([s, tf.cast(s_shared, s.dtype)], axis=0)
    g, _, _ = _ops().tebd_embedding_net(s, index, table, slope, *_weights(layers), source,
                                        **attrs)
    return tf.reshape(g, tf.concat([lead, [g.shape[-1]]], axis=0))


def _contraction_op(rows, index, table, slope, layers, attrs, shared=None, groups=None):
    """TebdEmbeddingContract on rows [..., n, 4] (index [..., n] or broadcast to it; the rest
    as _embedding_net_op's; groups net_contraction's): [..., 4, width] ([..., k, 4, width])."""
    shape = tf.shape(rows)
    lead = shape[:-1]
    index, source, s_shared = _candidates(lead, index, shared)
    if s_shared is None:
        s_shared = tf.zeros([0], rows.dtype)
    if groups is None:  # one group: an empty group tensor
        group, k = tf.zeros([0], tf.int32), 1
    else:
        group, k = tf.reshape(tf.broadcast_to(groups[0], lead), [-1]), groups[1]
    a, _, _, _ = _ops().tebd_embedding_contract(
        tf.reshape(rows, [-1, 4]), index, table, slope, *_weights(layers), source,
        tf.cast(s_shared, rows.dtype), tf.reduce_prod(shape[:-2]), group, groups=k, **attrs)
    out = shape[:-2] if groups is None else tf.concat([shape[:-2], [k]], axis=0)
    return tf.reshape(a, tf.concat([out, tf.shape(a)[1:]], axis=0))
