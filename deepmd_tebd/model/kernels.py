"""The batched matrix products of the descriptors (DPA-1's attention, and the contraction
R~^T G of every descriptor): TensorFlow's BatchMatMulV2 everywhere, except inside the training
step on the CPU, which uses this package's TebdBatchMatMul (op/tf/batch_mat_mul.cc: one dense
product per matrix over the CPU threads, two to three times as fast for these [S, S], [S, d]
and [S, 4] matrices). Frozen graphs therefore hold BatchMatMulV2 only, which every TensorFlow
runtime (DeePMD-kit's C++ interface, LAMMPS) has.

    with training_kernels():          # while the training step is traced
        z = batch_matmul(x, y, adjoint_b=True)
        a = contract(rows, g)         # rows^T g per atom
"""
from __future__ import annotations

import contextlib
import threading

import tensorflow as tf

__all__ = ["batch_matmul", "contract", "training_kernels"]

_STATE = threading.local()


@contextlib.contextmanager
def training_kernels():
    """Within it (while a graph is traced), batch_matmul uses TebdBatchMatMul when no GPU is
    visible."""
    before = getattr(_STATE, "training", False)
    _STATE.training = not tf.config.list_logical_devices("GPU")
    try:
        yield
    finally:
        _STATE.training = before


def batch_matmul(x, y, adjoint_a: bool = False, adjoint_b: bool = False):
    """op(x) op(y) of rank-3 real tensors of one batch size (op: transpose where adjoint)."""
    if getattr(_STATE, "training", False):
        from ..op import op_module

        return op_module.tebd_batch_mat_mul(x, y, adj_x=adjoint_a, adj_y=adjoint_b)
    return tf.linalg.matmul(x, y, adjoint_a=adjoint_a, adjoint_b=adjoint_b)


def contract(rows, g):
    """rows^T g over the neighbour axis, per atom: rows [..., n, 4] and g [..., n, M] of the same
    leading shape -> [..., 4, M]."""
    if not getattr(_STATE, "training", False):
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
