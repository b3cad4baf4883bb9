"""The environment matrix of the se_e2_a family: ProdEnvMatA with a descriptor's cutoffs, sel
and statistics, for the model (`prod_env_mat_a`) and for the statistics of the data
(`raw_env_mat`: davg 0, dstd 1, NumPy in and out).

Neighbours are sorted by type, then by distance, and kept up to sel[t] per type t; the rows of
an atom are normalised by the davg/dstd rows of its own type (atype), so the local atoms may come
in any order.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import numpy as np
import tensorflow as tf

from ..op import op_module
from ..precision import dtype_of

__all__ = ["INTERFACE_DTYPE", "prod_env_mat_a", "raw_env_mat"]

# davg/dstd and the environment matrix are kept in the interface precision
INTERFACE_DTYPE = dtype_of("default")


def prod_env_mat_a(coord, atype, natoms, box, mesh, davg, dstd, sel: Sequence[int],
                   rcut: float, rcut_smth: float, mixed_types: bool = False):
    """(rmat, rmat_deriv, rij, nlist), float64 [nf, nloc*4*nnei], [nf, nloc*4*nnei*3],
    [nf, nloc*nnei*3], int32 [nf, nloc*nnei], of coord [nf, nall*3], atype [nf, nall],
    natoms [2+ntypes], box [nf, 9] and mesh (0: open, 6: periodic, >= 16: a neighbour list;
    1 and 7 the mixed-type forms of 0 and 6). mixed_types: ProdEnvMatAMix (sel of one entry,
    its neighbour types and mask dropped: nlist gives them)."""
    natoms = tf.cast(natoms, tf.int32)
    coord = tf.reshape(tf.cast(coord, INTERFACE_DTYPE), [-1, natoms[1] * 3])
    atype = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])
    box = tf.reshape(tf.cast(box, INTERFACE_DTYPE), [-1, 9])
    op = op_module.prod_env_mat_a_mix if mixed_types else op_module.prod_env_mat_a
    return op(
        coord, atype, natoms, box, tf.cast(mesh, tf.int32), tf.convert_to_tensor(davg),
        tf.convert_to_tensor(dstd), rcut_a=-1.0, rcut_r=float(rcut),
        rcut_r_smth=float(rcut_smth), sel_a=[int(s) for s in sel], sel_r=[0] * len(sel))[:4]


def raw_env_mat(batch: Mapping, sel: Sequence[int], rcut: float, rcut_smth: float,
                ntypes: int | None = None, with_nlist: bool = False):
    """The environment matrix of a batch before normalisation (davg 0, dstd 1): ProdEnvMatA in
    float64 on the batch's coord, type, natoms_vec (padded with zero counts to 2 + len(sel)),
    box and default_mesh; with ntypes, ProdEnvMatAMix (one sel block for ntypes types).
    Returns [nframes, natoms, 4*nnei], nnei = sum(sel) (and the neighbour list [nframes,
    natoms, nnei] with_nlist)."""
    mixed_types = ntypes is not None
    ntypes = ntypes if mixed_types else len(sel)
    nnei = int(sum(sel))
    coord = np.asarray(batch["coord"], dtype=np.float64)
    nframes = coord.shape[0]
    atype = np.asarray(batch["type"], dtype=np.int32).reshape(nframes, -1)
    natoms = atype.shape[1]
    natoms_vec = np.zeros(2 + ntypes, dtype=np.int32)
    given = np.asarray(batch["natoms_vec"], dtype=np.int32)
    if given.size > 2 + ntypes and np.any(given[2 + ntypes:]):
        raise ValueError(f"the batch has atoms of type >= {ntypes}, but sel names only "
                         f"{ntypes} types")
    natoms_vec[:min(given.size, 2 + ntypes)] = given[:2 + ntypes]
    descrpt, _, _, nlist = prod_env_mat_a(
        coord, atype, natoms_vec, np.asarray(batch["box"], dtype=np.float64).reshape(nframes, 9),
        np.asarray(batch["default_mesh"], dtype=np.int32), tf.zeros([ntypes, 4 * nnei], tf.float64),
        tf.ones([ntypes, 4 * nnei], tf.float64), sel, rcut, rcut_smth, mixed_types)
    descrpt = descrpt.numpy().reshape(nframes, natoms, 4 * nnei)
    return (descrpt, nlist.numpy().reshape(nframes, natoms, nnei)) if with_nlist else descrpt
