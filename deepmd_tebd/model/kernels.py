"""The batched matrix product of DPA-1's attention: TensorFlow's BatchMatMulV2 everywhere, except
inside the training step on the CPU, which uses this package's TebdBatchMatMul (op/tf/
batch_mat_mul.cc: one dense product per matrix over the CPU threads, about twice as fast for
these [S, S] and [S, d] matrices). Frozen graphs therefore hold BatchMatMulV2 only, which every
TensorFlow runtime (DeePMD-kit's C++ interface, LAMMPS) has.

    with training_kernels():          # while the training step is traced
        z = batch_matmul(x, y, adjoint_b=True)
"""
from __future__ import annotations

import contextlib
import threading

import tensorflow as tf

__all__ = ["batch_matmul", "training_kernels"]

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
