"""How the se_e2_a descriptor's embedding nets meet the environment matrix, block by block.

Each function returns A * nnei = R~^T G [nf, nloc, 4, M1] for one strategy:

* `a_with_type_embedding`: ONE net on [s~, tebd[slot type] (, tebd[centre type])];
* `a_of_blocks`: one net per neighbour type j on its sel block (type_one_side; also the per-centre
  type case on one centre block);
* `a_per_centre_type`: one set of nets per centre type, on its contiguous block of local atoms.

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
    "a_per_centre_type",
    "a_with_type_embedding",
    "block_heads",
    "block_tails",
    "empty_rows",
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
    start = tf.constant(0, tf.int32)
    for i, nets in enumerate(nets_of_centre):
        count = natoms[2 + i]
        block = tf.slice(rmat, [0, start, 0, 0], [-1, count, -1, -1])
        rows = None if empty is None else empty[i:i + 1]
        out.append(a_of_blocks(block, nets, live, rows, tf.zeros([count], tf.int32), offsets,
                               m1))
        start = start + count
    return tf.concat(out, axis=1)
