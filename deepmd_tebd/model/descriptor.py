"""The se_e2_a descriptor (DeepPot-SE, two-body embedding, angular and radial information), with
or without type embedding.

Per centre atom i with normalised environment matrix R~ [nnei, 4] (rows (s, s x/r, s y/r, s z/r)
minus davg, divided by dstd, both of the centre's type) and embedding matrix G [nnei, M1]:

    A = R~^T G / nnei  [4, M1],   D = A^T A[:, :M2]  [M1, M2],  flattened row-major (a M2 + b).

G comes from embedding nets applied to s~ = R~[:, 0]:

* with type embedding: ONE net on [s~, tebd[slot type]] (type_one_side) or
  [s~, tebd[slot type], tebd[centre type]], where the slot type is the type of the slot's sel
  block (empty slots too);
* without: one net per neighbour type j on its block of slots (type_one_side: Nt nets), or one
  per (centre type i, neighbour type j) pair (Nt^2 nets, centres sliced by the natoms counts);
  excluded pairs have no net and contribute nothing.

`exclude_types` pairs (symmetric) zero the rows of R~ between those types. Local atoms must be
sorted by type (the natoms vector gives the blocks).
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ..op import op_module
from ..precision import dtype_of
from .network import MLP, embedding_net_rand_seed_shift

__all__ = [
    "DescriptorSeA",
    "centre_types",
    "descriptor_of_embedding",
    "exclusion_mask",
    "slot_types",
]

# davg/dstd and the environment matrix are kept in the interface precision
_INTERFACE_DTYPE = dtype_of("default")


def slot_types(sel: Sequence[int]) -> np.ndarray:
    """The type of each neighbour slot: the type of its sel block, [nnei]."""
    return np.repeat(np.arange(len(sel), dtype=np.int32), sel)


def exclusion_mask(exclude_types, sel: Sequence[int]) -> np.ndarray:
    """1/0 per (centre type, slot), [ntypes, nnei]; pairs are excluded both ways."""
    ntypes = len(sel)
    excluded = np.zeros((ntypes, ntypes), dtype=bool)
    for a, b in exclude_types:
        excluded[a, b] = excluded[b, a] = True
    return (~excluded[:, slot_types(sel)]).astype(np.float64)


def centre_types(natoms, ntypes: int):
    """The type of each local atom from the natoms vector (atoms sorted by type), [nloc]."""
    return tf.repeat(tf.range(ntypes, dtype=tf.int32), natoms[2:2 + ntypes])


def descriptor_of_embedding(a_mat, axis_neuron: int):
    """D = A^T A[:, :M2] from A = R~^T G / nnei [..., 4, M1]; returns [..., M1 * M2]."""
    m1 = a_mat.shape[-1]
    d = tf.matmul(a_mat, a_mat[..., :axis_neuron], transpose_a=True)  # [..., M1, M2]
    return tf.reshape(d, tf.concat([tf.shape(d)[:-2], [m1 * axis_neuron]], axis=0))


class DescriptorSeA(keras.layers.Layer):
    """se_e2_a descriptor layer.

    sel: slots per neighbour type (its length is ntypes); rcut, rcut_smth: cutoff and start of
    the smooth switch; neuron: embedding widths (M1 = neuron[-1]); axis_neuron: M2;
    tebd_dim: width of the type embedding (0: per-type nets); other arguments as in the input
    script's `descriptor` section.

    Non-trainable variables davg, dstd [ntypes, ndescrpt] (DeePMD-kit's `descrpt_attr/t_avg`,
    `t_std`), set by `set_statistics`.

    call(coord [nf, nall*3], atype [nf, nall], natoms [2+ntypes], box [nf, 9], mesh,
    type_embedding [ntypes, te] or None) -> dict with descriptor [nf, nloc, M1*M2] and the
    environment matrix outputs rmat [nf, nloc*ndescrpt], rmat_deriv [nf, nloc*ndescrpt*3],
    rij [nf, nloc*nnei*3], nlist [nf, nloc*nnei]. A model that needs forces calls the two halves,
    `env_mat` and `descriptor_of_env_mat`, and differentiates the second with respect to rmat.
    """

    def __init__(
        self,
        sel: Sequence[int],
        rcut: float = 6.0,
        rcut_smth: float = 0.5,
        neuron: Sequence[int] = (10, 20, 40),
        axis_neuron: int = 4,
        activation_function: Optional[str] = "tanh",
        resnet_dt: bool = False,
        type_one_side: bool = False,
        precision: str = "default",
        trainable: bool = True,
        seed: Optional[int] = None,
        exclude_types: Sequence[Sequence[int]] = (),
        set_davg_zero: bool = False,
        tebd_dim: int = 0,
        name: str = "descriptor",
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=dtype_of(precision).name, trainable=trainable, **kwargs)
        self.sel = [int(s) for s in sel]
        self.ntypes = len(self.sel)
        self.rcut = float(rcut)
        self.rcut_smth = float(rcut_smth)
        self.neuron = [int(n) for n in neuron]
        self.axis_neuron = int(axis_neuron)
        self.activation_function = activation_function
        self.resnet_dt = bool(resnet_dt)
        self.type_one_side = bool(type_one_side)
        self.precision = precision
        self.seed = seed
        self.exclude_types = [[int(a), int(b)] for a, b in exclude_types]
        self.set_davg_zero = bool(set_davg_zero)
        self.tebd_dim = int(tebd_dim)
        if self.rcut_smth > self.rcut:
            raise ValueError(f"rcut_smth ({self.rcut_smth}) must not exceed rcut ({self.rcut})")
        if not self.neuron:
            raise ValueError("the embedding net needs at least one layer (neuron is empty)")
        if not 0 < self.axis_neuron <= self.neuron[-1]:
            raise ValueError(f"axis_neuron ({self.axis_neuron}) must be in 1..neuron[-1] "
                             f"({self.neuron[-1]})")
        for pair in self.exclude_types:
            if not all(0 <= t < self.ntypes for t in pair):
                raise ValueError(f"exclude_types entry {pair} names a type outside "
                                 f"0..{self.ntypes - 1}")
        self.nnei = sum(self.sel)
        self.ndescrpt = 4 * self.nnei
        self._excluded = {(a, b) for a, b in self.exclude_types} | {
            (b, a) for a, b in self.exclude_types}
        self._mask = exclusion_mask(self.exclude_types, self.sel) if self.exclude_types else None
        self._offsets = np.concatenate([[0], np.cumsum(self.sel)]).astype(int).tolist()

        # embedding nets, seeds advancing by one net's shift in build order
        shift = embedding_net_rand_seed_shift(self.neuron)
        count = 0

        def net(scope, suffix, name):
            nonlocal count
            s = None if seed is None else int(seed) + shift * count
            count += 1
            return MLP(self.neuron, activation=activation_function, resnet_dt=resnet_dt,
                       precision=precision, trainable=trainable, seed=s, kind="embedding",
                       scope=scope, suffix=suffix, name=name)

        self._net_names: list[str] = []
        if self.tebd_dim > 0:
            self._add_net("filter_type_all", net("filter_type_all", "", "filter_type_all"))
        elif self.type_one_side:
            for j in range(self.ntypes):
                self._add_net(f"filter_type_all_{j}", net("filter_type_all", f"_{j}",
                                                          f"filter_type_all_{j}"))
        else:
            for i in range(self.ntypes):
                for j in range(self.ntypes):
                    if (i, j) not in self._excluded:
                        self._add_net(f"filter_type_{i}_{j}", net(f"filter_type_{i}", f"_{j}",
                                                                  f"filter_type_{i}_{j}"))

    def _add_net(self, attr: str, mlp: MLP) -> None:
        setattr(self, attr, mlp)
        self._net_names.append(attr)

    # -- sizes -----------------------------------------------------------------------------

    @property
    def dim_out(self) -> int:
        """M1 * M2."""
        return self.neuron[-1] * self.axis_neuron

    @property
    def embedding_input_width(self) -> int:
        if self.tebd_dim == 0:
            return 1
        return 1 + self.tebd_dim * (1 if self.type_one_side else 2)

    def nets(self) -> list[MLP]:
        return [getattr(self, name) for name in self._net_names]

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape=None):
        self.davg = self.add_weight(name="t_avg", shape=(self.ntypes, self.ndescrpt),
                                    initializer="zeros", dtype=_INTERFACE_DTYPE, trainable=False)
        self.dstd = self.add_weight(name="t_std", shape=(self.ntypes, self.ndescrpt),
                                    initializer="ones", dtype=_INTERFACE_DTYPE, trainable=False)
        for mlp in self.nets():
            mlp.build((None, self.embedding_input_width))

    def set_statistics(self, davg, dstd) -> None:
        """Assigns davg and dstd, each [ntypes, ndescrpt] or per component [ntypes, 4] (tiled
        over the slots). With set_davg_zero, davg stays zero."""
        if not self.built:
            self.build()
        davg = self._tile(davg, "davg")
        dstd = self._tile(dstd, "dstd")
        if self.set_davg_zero:
            davg = np.zeros_like(davg)
        self.davg.assign(davg)
        self.dstd.assign(dstd)

    def _tile(self, value, what: str) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.shape == (self.ntypes, 4):
            value = np.tile(value, (1, self.nnei))
        if value.shape != (self.ntypes, self.ndescrpt):
            raise ValueError(f"{what} must have shape ({self.ntypes}, {self.ndescrpt}) or "
                             f"({self.ntypes}, 4); got {value.shape}")
        return value

    def graph_variables(self) -> dict:
        names = {"descrpt_attr/t_avg": self.davg, "descrpt_attr/t_std": self.dstd}
        for mlp in self.nets():
            names.update(mlp.graph_variables())
        return names

    # -- computation -----------------------------------------------------------------------

    def env_mat(self, coord, atype, natoms, box, mesh):
        """ProdEnvMatA with this descriptor's cutoffs, sel and statistics: (rmat, rmat_deriv,
        rij, nlist), float64 [nf, nloc*ndescrpt], [nf, nloc*ndescrpt*3], [nf, nloc*nnei*3],
        int32 [nf, nloc*nnei]."""
        natoms = tf.cast(natoms, tf.int32)
        coord = tf.reshape(tf.cast(coord, _INTERFACE_DTYPE), [-1, natoms[1] * 3])
        atype = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])
        box = tf.reshape(tf.cast(box, _INTERFACE_DTYPE), [-1, 9])
        return op_module.prod_env_mat_a(
            coord, atype, natoms, box, tf.cast(mesh, tf.int32),
            tf.convert_to_tensor(self.davg), tf.convert_to_tensor(self.dstd),
            rcut_a=-1.0, rcut_r=self.rcut, rcut_r_smth=self.rcut_smth,
            sel_a=self.sel, sel_r=[0] * self.ntypes)

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None, nlist=None):
        """D [nf, nloc, M1*M2] (float64) from rmat [nf, nloc*ndescrpt]; atype [nf, nall] gives
        the centre types for exclude_types, natoms [2+ntypes] the type blocks.

        With the neighbour list nlist [nf, nloc*nnei], the slots of a sel block that are empty
        for every atom of the batch (the block's tail: neighbours come first) skip the
        embedding nets: all their rows are the centre type's (-davg/dstd) rows, so their share
        of A is computed once per centre type. D is the same; the gradient with respect to
        those rmat entries is zero, and the force and virial ops skip them (nlist -1)."""
        natoms = tf.cast(natoms, tf.int32)
        nloc = natoms[0]
        prec = self.compute_dtype
        rmat = tf.reshape(tf.cast(rmat, prec), [-1, nloc, self.nnei, 4])
        if self._mask is not None:
            atype_loc = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])[:, :nloc]
            mask = tf.gather(tf.constant(self._mask, prec),
                             tf.clip_by_value(atype_loc, 0, self.ntypes - 1))
            rmat = rmat * mask[..., None]
        live = self.sel if nlist is None else self._live_counts(nlist)
        empty = None if nlist is None else self._empty_rows(prec)
        centres = centre_types(natoms, self.ntypes)
        if self.tebd_dim > 0:
            if type_embedding is None:
                raise ValueError(f"{self.name} was built for type embedding: pass the "
                                 "type_embedding table")
            a_mat = self._a_with_type_embedding(rmat, live, empty, centres,
                                                tf.cast(type_embedding, prec))
        elif self.type_one_side:
            nets = [getattr(self, f"filter_type_all_{j}") for j in range(self.ntypes)]
            a_mat = self._a_of_blocks(rmat, nets, live, empty, centres)
        else:
            a_mat = self._a_per_centre_type(rmat, natoms, live, empty)
        d = descriptor_of_embedding(a_mat / self.nnei, self.axis_neuron)
        return tf.cast(d, _INTERFACE_DTYPE)

    def _live_counts(self, nlist):
        """Per sel block, the most neighbours any atom of the batch has in it (int32 scalars)."""
        filled = tf.cast(tf.reshape(nlist, [-1, self.nnei]) >= 0, tf.int32)
        counts = []
        for j in range(self.ntypes):
            in_block = tf.reduce_sum(filled[:, self._offsets[j]:self._offsets[j + 1]], axis=1)
            counts.append(tf.maximum(tf.reduce_max(in_block), 0))  # no atoms: 0
        return counts

    def _empty_rows(self, prec):
        """The environment-matrix row of an empty slot per (centre type, slot), -davg/dstd with
        the exclusion mask: [ntypes, nnei, 4]."""
        rows = tf.reshape(-self.davg / self.dstd, [self.ntypes, self.nnei, 4])
        rows = tf.cast(rows, prec)
        if self._mask is not None:
            rows = rows * tf.constant(self._mask, prec)[..., None]
        return rows

    def _tails(self, empty, live):
        """The always-empty tail of each sel block j: rows [ntypes, sel_j - live_j, 4]."""
        return [empty[:, self._offsets[j] + live[j]:self._offsets[j + 1]]
                for j in range(self.ntypes)]

    def _heads(self, rmat, live):
        """The live head of each sel block j: rmat [nf, nloc, live_j, 4]."""
        return [rmat[:, :, self._offsets[j]:self._offsets[j] + live[j]]
                for j in range(self.ntypes)]

    def _a_with_type_embedding(self, rmat, live, empty, centres, tebd):
        """R~^T G with one net on [s~, tebd[slot type] (, tebd[centre type])]: [nf, nloc, 4, M1]."""
        counts = tf.stack(live) if empty is not None else self.sel
        heads = rmat if empty is None else tf.concat(self._heads(rmat, live), axis=2)
        slots = tf.repeat(tf.range(self.ntypes, dtype=tf.int32), counts)
        a_mat = self._type_embedding_term(heads, slots, centres, tebd)
        if empty is not None:
            tails = tf.concat(self._tails(empty, live), axis=1)
            slots = tf.repeat(tf.range(self.ntypes, dtype=tf.int32),
                              tf.constant(self.sel, tf.int32) - counts)
            per_type = self._type_embedding_term(tails[None], slots,
                                                 tf.range(self.ntypes, dtype=tf.int32), tebd)
            a_mat = a_mat + tf.gather(per_type, centres, axis=1)
        return a_mat

    def _type_embedding_term(self, rows, slots, centres, tebd):
        """rows^T G for rows [nf, nc, n, 4] whose slot types are slots [n] and centre types
        centres [nc]: [nf, nc, 4, M1]."""
        net = self.filter_type_all
        te = self.tebd_dim
        s = rows[..., :1]
        if net.rules[0] is not None:  # the first layer is residual: it needs the whole input
            shape = tf.concat([tf.shape(rows)[:3], [te]], axis=0)  # [nf, nc, n, te]
            parts = [s, tf.broadcast_to(tf.gather(tebd, slots)[None, None], shape)]
            if not self.type_one_side:
                centre = tf.gather(tebd, centres)  # [nc, te]
                parts.append(tf.broadcast_to(centre[None, :, None, :], shape))
            g = net(tf.concat(parts, axis=-1))
        else:
            # first layer on [s, tebd_j (, tebd_i)] = s W_s + (tebd W_j)[j] (+ (tebd W_i)[i]):
            # the type rows are multiplied once per type, not once per neighbour slot
            blocks = [1, te] if self.type_one_side else [1, te, te]
            w, b = net.split_first_layer(blocks)
            pre = s * w[0][0] + (tf.gather(tf.matmul(tebd, w[1]), slots) + b)
            if not self.type_one_side:
                centre = tf.gather(tf.matmul(tebd, w[2]), centres)
                pre = pre + centre[None, :, None, :]
            g = net(None, first_preactivation=pre)  # [nf, nc, n, M1]
        return tf.matmul(rows, g, transpose_a=True)

    def _a_of_blocks(self, rmat, nets, live, empty, centres):
        """Sum over neighbour types j of R~_j^T G_j, G_j = nets[j](s~_j) (None: excluded);
        `centres` [nloc] index the rows of `empty` [nc, nnei, 4] for the always-empty tails."""
        a_mat = None
        heads = self._heads(rmat, live)
        tails = self._tails(empty, live) if empty is not None else [None] * self.ntypes
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
            a_mat = tf.zeros(tf.concat([shape[:2], [4, self.neuron[-1]]], axis=0), rmat.dtype)
        return a_mat

    def _a_per_centre_type(self, rmat, natoms, live, empty):
        """One set of nets per centre type, on that type's contiguous block of local atoms."""
        out = []
        start = tf.constant(0, tf.int32)
        for i in range(self.ntypes):
            count = natoms[2 + i]
            block = tf.slice(rmat, [0, start, 0, 0], [-1, count, -1, -1])
            nets = [getattr(self, f"filter_type_{i}_{j}", None) if (i, j) not in self._excluded
                    else None for j in range(self.ntypes)]
            rows = None if empty is None else empty[i:i + 1]
            out.append(self._a_of_blocks(block, nets, live, rows,
                                         tf.zeros([count], tf.int32)))
            start = start + count
        return tf.concat(out, axis=1)

    def call(self, coord, atype, natoms, box, mesh, type_embedding=None):
        rmat, rmat_deriv, rij, nlist = self.env_mat(coord, atype, natoms, box, mesh)
        descriptor = self.descriptor_of_env_mat(rmat, atype, natoms, type_embedding, nlist)
        return {"descriptor": descriptor, "rmat": rmat, "rmat_deriv": rmat_deriv, "rij": rij,
                "nlist": nlist}

    def get_config(self):
        return {
            "name": self.name,
            "sel": list(self.sel),
            "rcut": self.rcut,
            "rcut_smth": self.rcut_smth,
            "neuron": list(self.neuron),
            "axis_neuron": self.axis_neuron,
            "activation_function": self.activation_function,
            "resnet_dt": self.resnet_dt,
            "type_one_side": self.type_one_side,
            "precision": self.precision,
            "trainable": self.trainable,
            "seed": self.seed,
            "exclude_types": [list(p) for p in self.exclude_types],
            "set_davg_zero": self.set_davg_zero,
            "tebd_dim": self.tebd_dim,
        }
