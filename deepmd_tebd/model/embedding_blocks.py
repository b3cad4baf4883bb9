"""How the se_e2_a descriptor's embedding nets meet the environment matrix, block by block.

Each function returns A * nnei = R~^T G [nf, nloc, 4, M1] for one strategy:

* `a_with_type_embedding`: ONE net on [s~, tebd[slot type] (, tebd[centre type])];
* `a_of_blocks`: one net per neighbour type j on its sel block (type_one_side; also the per-centre
  type case on one centre block);
* `a_per_centre_type`: one set of nets per centre type, on its contiguous block of local atoms;
* `a_of_stacked_nets`: the per-type nets (by neighbour type, or by centre and neighbour type)
  as one stack in one fused op, while the training step is traced on the CPU;
* `a_of_tables` (compressed models): the same blocks, each net replaced by its table and the
  TabulateFusionSeA op (which also does the contraction with R~).

The rows of a sel block that are empty for every atom of the batch (the block's tail: neighbours
come first) skip the nets: they all equal the centre type's (-davg/dstd) row, so their share of A
is computed once per centre type (`empty_rows`, `block_tails`) and gathered per atom by its
type (`centres` [nf, nloc], from the atom types: the atoms may come in any order). The empty
slots among the live heads equal the same rows: on the fused net (kernels.scalar_net's
`shared`) each (centre type, slot) is computed once for all atoms whose slot is empty
(`head_copies`). Without a neighbour list (live = sel) every slot goes through the nets. The
per-type nets without type embedding (`a_per_centre_type`, per-centre tables) work on
contiguous blocks of centres and so need the local atoms sorted by type (natoms gives the
blocks).
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from .kernels import contract, fusable, net_contraction, net_stack

__all__ = [
    "a_of_blocks",
    "a_of_slot_terms",
    "a_of_stacked_nets",
    "a_of_tables",
    "a_per_centre_type",
    "a_with_type_embedding",
    "block_counts",
    "block_heads",
    "block_tails",
    "centre_blocks",
    "empty_rows",
    "head_copies",
    "live_counts",
]


def block_counts(nlist, offsets: Sequence[int]) -> list:
    """Per sel block, each atom's number of neighbours in it ([nf * nloc] int32)."""
    filled = tf.cast(tf.reshape(nlist, [-1, offsets[-1]]) >= 0, tf.int32)
    return [tf.reduce_sum(filled[:, offsets[j]:offsets[j + 1]], axis=1)
            for j in range(len(offsets) - 1)]


def live_counts(nlist, offsets: Sequence[int]) -> list:
    """Per sel block, the most neighbours any atom of the batch has in it (int32 scalars)."""
    return [tf.maximum(tf.reduce_max(counts), 0)  # no atoms: 0
            for counts in block_counts(nlist, offsets)]


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
    """The live head of each sel block j: rmat [nf, nloc, live_j, ...]. One SplitV cuts the
    slots into heads and tails; its gradient is one ConcatV2, where a slice per block would
    give one zero-padded full-size gradient per block, then their sum."""
    sizes = []
    for j in range(len(offsets) - 1):
        sizes += [live[j], offsets[j + 1] - offsets[j] - live[j]]
    return tf.split(rmat, tf.stack(sizes), axis=2, num=len(sizes))[0::2]


def head_copies(nlist, empty, live, offsets: Sequence[int], centres):
    """The empty slots of the live heads (nlist [nf, nloc * nnei] -1) as copies of the empty
    rows per centre type: (rows [ntypes, nh, 4], pick [nf, nloc, nh] int32), pick the row
    centre * nh + slot of a copy and -1 where the slot holds a neighbour."""
    rows = tf.concat(block_heads(empty[None], live, offsets), axis=2)[0]
    nlist = tf.reshape(nlist, tf.concat([tf.shape(centres), [offsets[-1]]], axis=0))
    heads = tf.concat(block_heads(nlist, live, offsets), axis=2)
    nh = tf.shape(heads)[2]
    pick = centres[:, :, None] * nh + tf.range(nh, dtype=tf.int32)
    return rows, tf.where(heads < 0, pick, -1)


def a_of_slot_terms(term, rmat, live, empty, centres, sel: Sequence[int],
                    offsets: Sequence[int], nlist=None):
    """R~^T G [nf, nloc, 4, M1] from term(rows, slots, centres, copies) = rows^T G of rows
    [nf, nc, n, 4] whose slot types are slots [n] and centre types centres [nf or 1, nc]: the
    live heads of all sel blocks in one term and, with `empty`, their always-empty tails in one
    more, once per centre type (None: every slot goes through the term, live = sel). With
    nlist, copies() gives the heads' `head_copies` (None for the tails), for a term to call
    where it runs a fused net."""
    ntypes = len(sel)
    counts = tf.stack(live) if empty is not None else list(sel)
    heads = rmat if empty is None else tf.concat(block_heads(rmat, live, offsets), axis=2)
    slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), counts)

    def copies():
        return head_copies(nlist, empty, live, offsets, centres)

    a_mat = term(heads, slots, centres,
                 copies if empty is not None and nlist is not None else None)
    if empty is not None:
        tails = tf.concat(block_tails(empty, live, offsets), axis=1)
        slots = tf.repeat(tf.range(ntypes, dtype=tf.int32), tf.constant(sel, tf.int32) - counts)
        per_type = term(tails[None], slots, tf.range(ntypes, dtype=tf.int32)[None], None)
        a_mat = a_mat + tf.gather(tf.squeeze(per_type, 0), centres)
    return a_mat


def a_with_type_embedding(net, rmat, live, empty, centres, tebd, sel: Sequence[int],
                          offsets: Sequence[int], type_one_side: bool, nlist=None):
    """R~^T G with one net on [s~, tebd[slot type] (, tebd[centre type])]: [nf, nloc, 4, M1].
    `empty` None: every slot goes through the net (live = sel); nlist: the empty slots of the
    heads are computed once per (centre type, slot) on the fused net."""
    def term(rows, slots, centres, copies):
        return _type_embedding_term(net, rows, slots, centres, tebd, type_one_side, copies)

    return a_of_slot_terms(term, rmat, live, empty, centres, sel, offsets, nlist)


def a_of_stacked_nets(nets, net_of_pair, rmat, live, empty, centres, sel: Sequence[int],
                      offsets: Sequence[int], nlist=None):
    """R~^T G with per-type nets of s~ alone, all of them in one fused op (kernels.net_stack;
    every net `fusable`): the slots of centre type i in sel block j go through
    nets[net_of_pair[i][j]]. An excluded pair may name any net: its rows of R~ are zero, so
    they add nothing to A, and neither the force nor any weight gradient gets anything from
    them. The centre types come from `centres`: the atoms may come in any order. nlist: as
    a_with_type_embedding's."""
    ntypes = len(sel)
    lookup = tf.constant([k for row in net_of_pair for k in row], tf.int32)
    run = net_stack(nets)

    def term(rows, slots, centres, copies):
        def index_of(centres):
            return tf.gather(lookup, centres[:, :, None] * ntypes + slots)

        return run.contraction(rows, index_of(centres), _shared(copies, index_of))

    return a_of_slot_terms(term, rmat, live, empty, centres, sel, offsets, nlist)


def _shared(copies, index_of):
    """scalar_net's `shared` from a_of_slot_terms' copies (None: none), index_of(centres) the
    rows' index for centre types centres [nf, nc] (or [n], the same for every centre)."""
    if copies is None:
        return None
    rows, pick = copies()
    ntypes, nh = tf.shape(rows)[0], tf.shape(rows)[1]  # the copied rows' centre types, slots
    index = index_of(tf.range(ntypes, dtype=tf.int32)[:, None])  # centres [ntypes, 1]
    return rows[..., 0], tf.broadcast_to(index, tf.stack([ntypes, 1, nh])), pick


def _type_embedding_term(net, rows, slots, centres, tebd, type_one_side: bool, copies=None):
    """rows^T G for rows [nf, nc, n, 4] whose slot types are slots [n] and centre types
    centres [nf or 1, nc]: [nf, nc, 4, M1]; copies: a_of_slot_terms'."""
    te = tebd.shape[-1]
    s = rows[..., :1]
    if net.rules[0] is not None:  # the first layer is residual: it needs the whole input
        shape = tf.concat([tf.shape(rows)[:3], [te]], axis=0)  # [nf, nc, n, te]
        parts = [s, tf.broadcast_to(tf.gather(tebd, slots)[None, None], shape)]
        if not type_one_side:
            centre = tf.gather(tebd, centres)  # [nf, nc, te]
            parts.append(tf.broadcast_to(centre[:, :, None, :], shape))
        g = net(tf.concat(parts, axis=-1))
    else:
        # first layer on [s, tebd_j (, tebd_i)] = s W_s + table[(i,) j], the table
        # (tebd W_j)[j] (+ (tebd W_i)[i]) + b over the slot (and centre) types: the type rows
        # are multiplied once per type, not once per neighbour slot
        blocks = [1, te] if type_one_side else [1, te, te]
        w, b = net.split_first_layer(blocks)  # in the net's matmul dtype (mixed precision)
        tebd = tf.cast(tebd, b.dtype)
        table = tf.matmul(tebd, w[1]) + b
        ntypes = tf.shape(tebd)[0]

        def index_of(centres):
            return slots if type_one_side else centres[:, :, None] * ntypes + slots

        if not type_one_side:
            table = tf.reshape(tf.matmul(tebd, w[2])[:, None, :] + table[None],
                               [-1, table.shape[-1]])
        shared = _shared(copies, index_of) if fusable(net) else None
        return net_contraction(net, rows, index_of(centres), table, w[0][0], shared)
    return contract(rows, g)


def a_of_blocks(rmat, nets: Sequence[Optional[object]], live, empty, centres,
                offsets: Sequence[int], m1: int):
    """Sum over neighbour types j of R~_j^T G_j, G_j = nets[j](s~_j) (None: excluded);
    `centres` [nf or 1, nloc] index the rows of `empty` [nc, nnei, 4] for the always-empty
    tails."""
    a_mat = None
    heads = block_heads(rmat, live, offsets)
    tails = block_tails(empty, live, offsets) if empty is not None else [None] * len(nets)
    for mlp, head, tail in zip(nets, heads, tails):
        if mlp is None:
            continue
        term = contract(head, mlp(head[..., :1]))
        if tail is not None:
            per_type = contract(tail, mlp(tail[..., :1]))
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
        out.append(a_of_blocks(block, nets, live, rows,
                               tf.zeros([1, natoms[2 + i]], tf.int32), offsets, m1))
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
