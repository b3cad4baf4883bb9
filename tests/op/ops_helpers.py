"""Calling the TF ops on single frames given as NumPy arrays (atoms sorted by type)."""
import numpy as np
import tensorflow as tf

from deepmd_tebd.op import op_module


def sort_by_type(coord, atype):
    order = np.argsort(atype, kind="stable")
    return coord[order], atype[order]


def natoms_vector(atype, ntypes, nall=None):
    counts = [int(np.sum(atype == t)) for t in range(ntypes)]
    n = len(atype)
    return np.array([n, n if nall is None else nall] + counts, dtype=np.int32)


def env_mat(coord, atype, box, davg, dstd, sel, rcut, rcut_smth, dtype=np.float64):
    """One frame through ProdEnvMatA; box None means open boundaries (mesh of length 0)."""
    ntypes = len(sel)
    mesh = np.zeros(6 if box is not None else 0, dtype=np.int32)
    box9 = np.zeros(9) if box is None else np.asarray(box).reshape(9)
    out = op_module.prod_env_mat_a(
        tf.constant(coord.reshape(1, -1), dtype),
        tf.constant(atype.reshape(1, -1), tf.int32),
        natoms_vector(atype, ntypes),
        tf.constant(box9.reshape(1, 9), dtype),
        mesh,
        tf.constant(davg, dtype),
        tf.constant(dstd, dtype),
        rcut_a=-1.0, rcut_r=rcut, rcut_r_smth=rcut_smth, sel_a=list(sel), sel_r=[0] * ntypes,
    )
    return [t.numpy()[0] for t in out]
