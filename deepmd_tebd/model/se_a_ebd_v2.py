"""The se_a_ebd_v2 descriptor (stripped type embedding): se_e2_a's D = A^T A< with

    G = N_s(s~) * (1 + T),

a radial net N_s on s~ alone and T a type net's output on the neighbour's type embedding
(type_one_side) or on [neighbour's, centre's]. The type embedding table is padded with a zero
row that empty slots take (DeePMD-kit's `t_typeebd` padding; deepmd/tf/descriptor/se_a.py:
DescrptSeA._filter_lower, tebd_input_mode "strip"), so the type net runs once per type (pair),
not once per slot.

As DeePMD-kit builds it the model is discontinuous at the cutoff (an empty slot takes the zero
type row, a neighbour at rcut its own type's); `smooth_type_embedding` (an extension of this
package) weights T by `type_embedding_switch` of the raw s(r), which vanishes at rcut and on
empty slots. The centre types come from the atom types, so the local atoms may come in any
order.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from .descriptor import (EnvMatDescriptor, centre_types, descriptor_of_embedding,
                         type_embedding_switch)
from .embedding_blocks import block_heads, block_tails, empty_rows, head_copies, live_counts
from .kernels import contract, fusable, net_contraction, scalar_rows
from .env_mat import INTERFACE_DTYPE

__all__ = ["DescriptorSeAEbdV2", "a_with_stripped_type_embedding", "stripped_type_table"]


def stripped_type_table(type_net, tebd, type_one_side: bool):
    """The type net's output per neighbour type, [ntypes + 1, M1] (one side), or per (centre,
    neighbour) pair at centre * (ntypes + 1) + neighbour, [(ntypes + 1)^2, M1], its input then
    [tebd[neighbour], tebd[centre]]; tebd [ntypes + 1, te] has the zero row of empty slots last
    (deepmd/tf/descriptor/se_a.py: DescrptSeA._filter_lower, tebd_input_mode "strip")."""
    if type_one_side:
        return type_net(tebd)
    n = tf.shape(tebd)[0]
    te = tebd.shape[-1]
    neighbour = tf.broadcast_to(tebd[None, :, :], [n, n, te])
    centre = tf.broadcast_to(tebd[:, None, :], [n, n, te])
    return type_net(tf.reshape(tf.concat([neighbour, centre], axis=-1), [-1, 2 * te]))


def _stripped_term(radial, rows, table, group, base, k: int, weight, copies=None):
    """rows^T G with G = N_s(s~) * (1 + w T), T = table[base + group] per row: rows [..., n, 4],
    group [..., n] int32 in [0, k) (the slot's neighbour type, k - 1 = ntypes where it is
    empty), base the rows' centre offset in the table ([..., 1] int32, or 0 with
    type_one_side; the table has k rows per centre type), the weights w [..., n] or None (1);
    copies() gives embedding_blocks.head_copies of the rows, whose empty slots the fused
    radial net computes once per (centre type, slot).

    On the fused radial net (w 1), G is never formed: A_q = R~_q^T N_s over the rows of each
    neighbour type q in one TebdEmbeddingContract (contraction groups), then
    A = sum_q A_q * (1 + T_q), T constant over a group."""
    fused = fusable(radial)
    shared = None
    if copies is not None and fused:  # the copies' ops only for the fused net
        copied, pick = copies()
        shared = (copied[..., 0], pick)
    if weight is None and fused:
        a_groups = net_contraction(radial, rows, *scalar_rows(radial, shared),
                                   groups=(group, k))  # [..., k, 4, M1]
        scale = tf.cast(tf.gather(table, base + tf.range(k, dtype=tf.int32)),
                        a_groups.dtype) + 1.0  # [(..., ) k, M1]
        return tf.reduce_sum(a_groups * scale[..., None, :], axis=-3)
    type_rows = tf.gather(table, base + group)
    if weight is not None:
        type_rows = type_rows * weight[..., None]
    g = radial(rows[..., :1], shared=shared)
    return contract(rows, g * type_rows + g)


def a_with_stripped_type_embedding(radial, type_net, rmat, nlist, live, empty, centres, tebd,
                                   offsets: Sequence[int], type_one_side: bool, weight=None,
                                   empty_weight=None):
    """R~^T G for se_a_ebd_v2: G = N_s(s~) * (1 + T), T the type net's output on the neighbour's
    padded type embedding tebd [ntypes + 1, te] (and the centre's): [nf, nloc, 4, M1].

    An empty slot (nlist -1) takes the zero row, type ntypes, whatever its sel block; the
    slots of the other ones hold neighbours of their block's type (ProdEnvMatA sorts by type).
    The always-empty tails are therefore the same for every atom of a centre type: computed
    once per centre type (`empty` [ntypes, nnei, 4]) and gathered by the centre types centres
    [nf, nloc]. weight [nf, nloc, nnei] / empty_weight [ntypes, nnei] scale T
    (smooth_type_embedding); None: 1."""
    ntypes = len(offsets) - 1
    table = stripped_type_table(type_net, tebd, type_one_side)
    heads = tf.concat(block_heads(rmat, live, offsets), axis=2)
    nlist = tf.reshape(nlist, tf.shape(rmat)[:3])
    slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), tf.stack(live))
    nei_type = tf.where(tf.concat(block_heads(nlist, live, offsets), axis=2) >= 0, slots, ntypes)
    base = 0 if type_one_side else (centres * (ntypes + 1))[:, :, None]
    head_weight = None if weight is None else tf.concat(block_heads(weight, live, offsets), 2)
    a_mat = _stripped_term(radial, heads, table, nei_type, base, ntypes + 1, head_weight,
                           lambda: head_copies(nlist, empty, live, offsets, centres))
    tails = tf.concat(block_tails(empty, live, offsets), axis=1)  # [ntypes, ntail, 4]
    tail_base = 0 if type_one_side else tf.range(ntypes, dtype=tf.int32)[:, None] * (ntypes + 1)
    tail_types = tf.fill(tf.shape(tails)[:2], ntypes)
    tail_weight = None if empty_weight is None else tf.concat(
        block_tails(empty_weight[..., None], live, offsets), axis=1)[..., 0]
    per_type = _stripped_term(radial, tails, table, tail_types, tail_base, ntypes + 1,
                              tail_weight)  # [ntypes, 4, M1]
    return a_mat + tf.gather(per_type, centres)


class DescriptorSeAEbdV2(EnvMatDescriptor):
    """se_a_ebd_v2 descriptor layer (the protocol of descriptor.py: Descriptor); settings: the
    se_a_ebd_v2 section (config/descriptors.py: SeAEbdV2Config); tebd_dim > 0: the width of
    the type embedding it needs. It takes the type embedding table padded with a zero row
    (`type_embedding_input`)."""

    def __init__(self, settings, tebd_dim: int = 0, name: str = "descriptor",
                 mixed_precision=None, **kwargs):
        super().__init__(settings, tebd_dim, name, mixed_precision, **kwargs)
        if self.tebd_dim <= 0:
            raise ValueError("se_a_ebd_v2 needs a type embedding (tebd_dim > 0)")
        self.axis_neuron = settings.axis_neuron
        self.type_one_side = settings.type_one_side
        # the type net first, then the radial net, seeds in that order (DeePMD-kit's
        # deepmd/tf/descriptor/se_a.py: DescrptSeA._filter_lower, tebd_input_mode "strip")
        side = "one_side" if self.type_one_side else "two_side"
        self.add_net("type_net", self.tebd_dim * (1 if self.type_one_side else 2),
                     "filter_type_all", f"_{side}_ebd", name=f"filter_type_all_{side}_ebd")
        self.add_net("filter_type_all", 1, "filter_type_all")

    def type_embedding_input(self, table):
        """The table [ntypes, te] with a zero row (the type of empty neighbour slots) appended,
        [ntypes + 1, te], as DeePMD-kit's `t_typeebd` (deepmd/tf/utils/type_embed.py:
        TypeEmbedNet.build, padding)."""
        return tf.concat([table, tf.zeros([1, table.shape[-1]], table.dtype)], axis=0)

    def tabulation_refusal(self, from_nets: bool = True):
        """Always: deepmd_tebd compresses no model with type embedding."""
        return ("model compression is not supported for se_a_ebd_v2: deepmd_tebd compresses no "
                "model with type embedding (DeePMD-kit >= 2.2.6 tabulates this descriptor's "
                "radial net and precomputes its type net; deepmd_tebd does not). The "
                "uncompressed model runs as it is")

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None, nlist=None):
        """D [nf, nloc, M1*M2] (float64) from rmat [nf, nloc*ndescrpt], the padded
        type_embedding table [ntypes + 1, te] and the neighbour list nlist [nf, nloc*nnei]
        (whose empty slots take the zero row); atype [nf, nall] gives the centre types. The
        slots of a sel block empty for the whole batch are computed once per centre type."""
        if type_embedding is None or nlist is None:
            raise ValueError(f"{self.name} (se_a_ebd_v2) needs the padded type_embedding "
                             "table and the neighbour list")
        rmat = self.masked_env_mat(rmat, atype, natoms)
        prec = rmat.dtype
        live = live_counts(nlist, self.offsets)
        empty = empty_rows(self.davg, self.dstd, self.ntypes, self.nnei, prec, self.mask)
        centres = centre_types(atype, natoms, self.ntypes)
        a_mat = a_with_stripped_type_embedding(
            self.filter_type_all, self.type_net, rmat, nlist, live, empty, centres,
            tf.cast(type_embedding, prec), self.offsets, self.type_one_side,
            *self._smooth_weights(rmat, empty, centres))
        d = descriptor_of_embedding(a_mat / self.nnei, self.axis_neuron)
        return tf.cast(d, INTERFACE_DTYPE)

    def _smooth_weights(self, rmat, empty, centres):
        """With smooth_type_embedding, the weights of T on the slots [nf, nloc, nnei] and on the
        empty rows [ntypes, nnei] (`type_embedding_switch` of the raw s); else (None, None)."""
        if not self.settings.smooth_type_embedding:
            return None, None
        prec = rmat.dtype
        davg = tf.cast(tf.reshape(self.davg, [self.ntypes, self.nnei, 4])[..., 0], prec)
        dstd = tf.cast(tf.reshape(self.dstd, [self.ntypes, self.nnei, 4])[..., 0], prec)
        s_raw = rmat[..., 0] * tf.gather(dstd, centres) + tf.gather(davg, centres)
        s_empty = empty[..., 0] * dstd + davg
        return (type_embedding_switch(s_raw, self.rcut_smth),
                type_embedding_switch(s_empty, self.rcut_smth))
