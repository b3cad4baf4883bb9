"""How the se_e2_a descriptor's embedding nets meet the environment matrix, block by block.

Each function returns A * nnei = R~^T G [nf, nloc, 4, M1] for one strategy:

* `a_with_type_embedding`: ONE net on [s~, tebd[slot type] (, tebd[centre type])];
* `a_with_stripped_type_embedding` (se_a_ebd_v2): a radial net on s~ alone times (1 + a type
  net's output on the neighbour's (and centre's) type embedding);
* `a_of_blocks`: one net per neighbour type j on its sel block (type_one_side; also the per-centre
  type case on one centre block);
* `a_per_centre_type`: one set of nets per centre type, on its contiguous block of local atoms;
* `a_of_tables` (compressed models): the same blocks, each net replaced by its table and the
  TabulateFusionSeA op (which also does the contraction with R~).

The rows of a sel block that are empty for every atom of the batch (the block's tail: neighbours
come first) skip the nets: they all equal the centre type's (-davg/dstd) row, so their share of A
is computed once per centre type (`empty_rows`, `block_tails`) and gathered per atom. Without a
neighbour list (live = sel) every slot goes through the nets.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

__all__ = [
    "a_of_blocks",
    "a_of_tables",
    "a_per_centre_type",
    "a_with_stripped_type_embedding",
    "a_with_type_embedding",
    "block_heads",
    "block_tails",
    "empty_rows",
    "stripped_type_table",
    "live_counts",
]


def live_counts(nlist, sel: Sequence[int], offsets: Sequence[int]) -> list:
    """Per sel block, the most neighbours any atom of the batch has in it (int32 scalars)."""
    nnei = offsets[-1]
    filled = tf.cast(tf.reshape(nlist, [-1, nnei]) >= 0, tf.int32)
    counts = []
    for j in range(len(sel)):
        in_block = tf.reduce_sum(filled[:, offsets[j]:offsets[j + 1]], axis=1)
        counts.append(tf.maximum(tf.reduce_max(in_block), 0))  # no atoms: 0
    return counts


def empty_rows(davg, dstd, ntypes: int, nnei: int, prec, mask=None):
    """The environment-matrix row of an empty slot per (centre type, slot), -davg/dstd with the
    exclusion mask [ntypes, nnei] applied: [ntypes, nnei, 4]."""
    rows = tf.cast(tf.reshape(-davg / dstd, [ntypes, nnei, 4]), prec)
    if mask is not None:
        rows = rows * tf.constant(mask, prec)[..., None]
    return rows


def block_tails(empty, live, offsets: Sequence[int]) -> list:
    """The always-empty tail of each sel block j: rows [ntypes, sel_j - live_j, 4]."""
    return [empty[:, offsets[j] + live[j]:offsets[j + 1]] for j in range(len(offsets) - 1)]


def block_heads(rmat, live, offsets: Sequence[int]) -> list:
    """The live head of each sel block j: rmat [nf, nloc, live_j, 4]."""
    return [rmat[:, :, offsets[j]:offsets[j] + live[j]] for j in range(len(offsets) - 1)]


def a_with_type_embedding(net, rmat, live, empty, centres, tebd, sel: Sequence[int],
                          offsets: Sequence[int], type_one_side: bool):
    """R~^T G with one net on [s~, tebd[slot type] (, tebd[centre type])]: [nf, nloc, 4, M1].
    `empty` None: every slot goes through the net (live = sel)."""
    ntypes = len(sel)
    counts = tf.stack(live) if empty is not None else list(sel)
    heads = rmat if empty is None else tf.concat(block_heads(rmat, live, offsets), axis=2)
    slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), counts)
    a_mat = _type_embedding_term(net, heads, slots, centres, tebd, type_one_side)
    if empty is not None:
        tails = tf.concat(block_tails(empty, live, offsets), axis=1)
        slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), tf.constant(sel, tf.int32) - counts)
        per_type = _type_embedding_term(net, tails[None], slots,
                                        tf.range(ntypes, dtype=tf.int32), tebd, type_one_side)
        a_mat = a_mat + tf.gather(per_type, centres, axis=1)
    return a_mat


def _type_embedding_term(net, rows, slots, centres, tebd, type_one_side: bool):
    """rows^T G for rows [nf, nc, n, 4] whose slot types are slots [n] and centre types
    centres [nc]: [nf, nc, 4, M1]."""
    te = tebd.shape[-1]
    s = rows[..., :1]
    if net.rules[0] is not None:  # the first layer is residual: it needs the whole input
        shape = tf.concat([tf.shape(rows)[:3], [te]], axis=0)  # [nf, nc, n, te]
        parts = [s, tf.broadcast_to(tf.gather(tebd, slots)[None, None], shape)]
        if not type_one_side:
            centre = tf.gather(tebd, centres)  # [nc, te]
            parts.append(tf.broadcast_to(centre[None, :, None, :], shape))
        g = net(tf.concat(parts, axis=-1))
    else:
        # first layer on [s, tebd_j (, tebd_i)] = s W_s + (tebd W_j)[j] (+ (tebd W_i)[i]):
        # the type rows are multiplied once per type, not once per neighbour slot
        blocks = [1, te] if type_one_side else [1, te, te]
        w, b = net.split_first_layer(blocks)  # in the net's matmul dtype (mixed precision)
        s, tebd = tf.cast(s, b.dtype), tf.cast(tebd, b.dtype)
        pre = s * w[0][0] + (tf.gather(tf.matmul(tebd, w[1]), slots) + b)
        if not type_one_side:
            centre = tf.gather(tf.matmul(tebd, w[2]), centres)
            pre = pre + centre[None, :, None, :]
        g = net(None, first_preactivation=pre)  # [nf, nc, n, M1]
    return tf.matmul(rows, g, transpose_a=True)


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


def _stripped_term(radial, rows, type_rows, weight):
    """rows^T G with G = N_s(s~) * (1 + w T): rows [..., n, 4], type_rows T [..., n, M1], the
    weights w [..., n] or None (1)."""
    if weight is not None:
        type_rows = type_rows * weight[..., None]
    g = radial(rows[..., :1])
    return tf.matmul(rows, g * type_rows + g, transpose_a=True)


def a_with_stripped_type_embedding(radial, type_net, rmat, nlist, live, empty, centres, tebd,
                                   offsets: Sequence[int], type_one_side: bool, weight=None,
                                   empty_weight=None):
    """R~^T G for se_a_ebd_v2: G = N_s(s~) * (1 + T), T the type net's output on the neighbour's
    padded type embedding tebd [ntypes + 1, te] (and the centre's): [nf, nloc, 4, M1].

    An empty slot (nlist -1) takes the zero row, type ntypes, whatever its sel block; the
    slots of the other ones hold neighbours of their block's type (ProdEnvMatA sorts by type).
    The always-empty tails are therefore the same for every atom of a centre type: computed
    once per centre type (`empty` [ntypes, nnei, 4]). weight [nf, nloc, nnei] / empty_weight
    [ntypes, nnei] scale T (smooth_type_embedding); None: 1."""
    ntypes = len(offsets) - 1
    table = stripped_type_table(type_net, tebd, type_one_side)
    heads = tf.concat(block_heads(rmat, live, offsets), axis=2)
    nlist = tf.reshape(nlist, tf.shape(rmat)[:3])
    slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), tf.stack(live))
    nei_type = tf.where(tf.concat(block_heads(nlist, live, offsets), axis=2) >= 0, slots, ntypes)
    if not type_one_side:
        nei_type = nei_type + (centres * (ntypes + 1))[None, :, None]
    head_weight = None if weight is None else tf.concat(block_heads(weight, live, offsets), 2)
    a_mat = _stripped_term(radial, heads, tf.gather(table, nei_type), head_weight)
    tails = tf.concat(block_tails(empty, live, offsets), axis=1)  # [ntypes, ntail, 4]
    pad = tf.range(ntypes, dtype=tf.int32) * (0 if type_one_side else ntypes + 1) + ntypes
    tail_types = tf.broadcast_to(tf.gather(table, pad)[:, None, :],
                                 tf.concat([tf.shape(tails)[:2], [table.shape[-1]]], axis=0))
    tail_weight = None if empty_weight is None else tf.concat(
        block_tails(empty_weight[..., None], live, offsets), axis=1)[..., 0]
    per_type = _stripped_term(radial, tails, tail_types, tail_weight)  # [ntypes, 4, M1]
    return a_mat + tf.gather(per_type, centres)[None]


def a_of_blocks(rmat, nets: Sequence[Optional[object]], live, empty, centres,
                offsets: Sequence[int], m1: int):
    """Sum over neighbour types j of R~_j^T G_j, G_j = nets[j](s~_j) (None: excluded);
    `centres` [nloc] index the rows of `empty` [nc, nnei, 4] for the always-empty tails."""
    a_mat = None
    heads = block_heads(rmat, live, offsets)
    tails = block_tails(empty, live, offsets) if empty is not None else [None] * len(nets)
    for mlp, head, tail in zip(nets, heads, tails):
        if mlp is None:
            continue
        term = tf.matmul(head, mlp(head[..., :1]), transpose_a=True)
        if tail is not None:
            per_type = tf.matmul(tail, mlp(tail[..., :1]), transpose_a=True)
            term = term + tf.gather(per_type, centres)
        a_mat = term if a_mat is None else a_mat + term
    if a_mat is None:  # every neighbour type excluded
        shape = tf.shape(rmat)
        a_mat = tf.zeros(tf.concat([shape[:2], [4, m1]], axis=0), rmat.dtype)
    return a_mat


def a_per_centre_type(rmat, natoms, nets_of_centre, live, empty, offsets: Sequence[int],
                      m1: int):
    """One set of nets per centre type i (nets_of_centre[i], a list over neighbour types), on
    that type's contiguous block of local atoms (natoms [2+ntypes] gives the blocks)."""
    out = []
    for i, (block, nets) in enumerate(zip(centre_blocks(rmat, natoms, len(nets_of_centre)),
                                          nets_of_centre)):
        rows = None if empty is None else empty[i:i + 1]
        out.append(a_of_blocks(block, nets, live, rows, tf.zeros([natoms[2 + i]], tf.int32),
                               offsets, m1))
    return tf.concat(out, axis=1)


def centre_blocks(rmat, natoms, ntypes: int) -> list:
    """rmat [nf, nloc, ...] cut into the contiguous blocks of local atoms of each centre type
    (natoms [2+ntypes]) with tf.split, whose gradient is one ConcatV2 (a slice per block
    would give one zero-padded full-size gradient per block, then their sum)."""
    return tf.split(rmat, natoms[2:2 + ntypes], axis=1, num=ntypes)


def _tabulated_block(rows, table, m1: int):
    """R~^T G of one block rows [nf, nc, n, 4] from a tabulated net (model/tabulation.py
    NetTable) through TabulateFusionSeA, as DeePMD-kit's compressed DescrptSeA._filter_lower:
    [nf, nc, 4, m1]. s~ is cut out with Slice (gradient: Pad), not a strided slice, whose
    gradient StridedSliceGrad is several times slower."""
    from ..op import op_module

    prec = rows.dtype
    em = tf.reshape(rows, [-1, tf.shape(rows)[2], 4])
    s = tf.reshape(tf.slice(em, [0, 0, 0], [-1, -1, 1]), [-1, 1])
    out = op_module.tabulate_fusion_se_a(
        tf.constant(table.table, prec), tf.constant(table.info, prec), s, em,
        last_layer_size=m1)
    return tf.reshape(out, tf.concat([tf.shape(rows)[:2], [4, m1]], axis=0))


def a_of_tables(rmat, natoms, tables, offsets: Sequence[int], m1: int):
    """A * nnei of a compressed model: tables [ntypes] (one side) or [ntypes][ntypes] (per
    centre type, centres split by the natoms counts), NetTable or None (excluded), summed over
    the neighbour-type blocks of rmat [nf, nloc, nnei, 4] (all slots: the op sums the sorted
    padding itself).

    The blocks are cut with tf.split, whose gradient is one ConcatV2 of the blocks' gradients;
    slicing each block (DeePMD-kit's tf.slice) makes one zero-padded full-size gradient per
    block and their sum, per centre type and per neighbour type."""
    per_centre = bool(tables) and isinstance(tables[0], (list, tuple))
    sizes = [offsets[j + 1] - offsets[j] for j in range(len(offsets) - 1)]

    def blocks(rows, row_tables):
        a_mat = None
        for block, table in zip(tf.split(rows, sizes, axis=2), row_tables):
            if table is None:
                continue
            term = _tabulated_block(block, table, m1)
            a_mat = term if a_mat is None else a_mat + term
        if a_mat is None:
            a_mat = tf.zeros(tf.concat([tf.shape(rows)[:2], [4, m1]], axis=0), rows.dtype)
        return a_mat

    if not per_centre:
        return blocks(rmat, tables)
    centres = centre_blocks(rmat, natoms, len(tables))
    return tf.concat([blocks(rows, row_tables) for rows, row_tables in zip(centres, tables)],
                     axis=1)
