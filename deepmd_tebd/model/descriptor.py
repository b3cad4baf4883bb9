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

* se_a_ebd_v2 (stripped type embedding): G = N_s(s~) * (1 + T), a radial net N_s on s~ alone and
  a type net on the neighbour's type embedding (type_one_side) or on [neighbour's, centre's], the
  table padded with a zero row that empty slots take (`a_with_stripped_type_embedding`).

`exclude_types` pairs (symmetric) zero the rows of R~ between those types. Local atoms must be
sorted by type (the natoms vector gives the blocks). How the nets meet the blocks of R~ is in
`embedding_blocks.py`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ..config.objects import DescriptorConfig, MixedPrecisionConfig
from ..op import op_module
from ..precision import dtype_of
from .embedding_blocks import (a_of_blocks, a_of_tables, a_per_centre_type,
                               a_with_stripped_type_embedding, a_with_type_embedding, empty_rows,
                               live_counts)
from .network import MLP, embedding_net_rand_seed_shift

__all__ = [
    "DescriptorSeA",
    "centre_types",
    "descriptor_of_embedding",
    "exclusion_mask",
    "slot_types",
    "type_embedding_switch",
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


def type_embedding_switch(s_raw, rcut_smth: float):
    """The weight of the type net's output with smooth_type_embedding (se_a_ebd_v2), a function
    of the raw s(r) (R~[:, 0] dstd + davg): clip(1 - (1 - rcut_smth s)^3, 0, 1).

    It is 0 where s is, at r >= rcut and on empty slots, so a neighbour leaving the cutoff has
    the empty slot's G, N_s(-davg/dstd), and the energy stays continuous (DeePMD-kit's own model,
    weight 1, jumps by N_s(-davg/dstd) T unless davg is 0); it is 1 for r <= rcut_smth, and as
    smooth as s at rcut (its derivatives vanish there with those of s). The same weight as
    DeePMD-kit's se_atten smooth_type_embedding (deepmd/tf/descriptor/se_atten.py:
    `recovered_switch`), so that the option means the same in both descriptors."""
    u = 1.0 - rcut_smth * s_raw
    return tf.clip_by_value(1.0 - u * u * u, 0.0, 1.0)


def descriptor_of_embedding(a_mat, axis_neuron: int):
    """D = A^T A[:, :M2] from A = R~^T G / nnei [..., 4, M1]; returns [..., M1 * M2].
    A[:, :M2] is cut with Slice: its gradient (Pad) is several times faster than a strided
    slice's (StridedSliceGrad)."""
    m1 = a_mat.shape[-1]
    rank = a_mat.shape.rank
    a_m2 = tf.slice(a_mat, [0] * rank, [-1] * (rank - 1) + [axis_neuron])
    d = tf.matmul(a_mat, a_m2, transpose_a=True)  # [..., M1, M2]
    return tf.reshape(d, tf.concat([tf.shape(d)[:-2], [m1 * axis_neuron]], axis=0))


class DescriptorSeA(keras.layers.Layer):
    """se_e2_a descriptor layer.

    settings: the `model/descriptor` section (sel resolved: its length is ntypes); tebd_dim:
    width of the type embedding (0: per-type nets); mixed_precision: the
    `training/mixed_precision` settings or None. With them the nets' weights and the
    contractions R~^T G and A^T A are in output_prec and the embedding nets compute in
    compute_prec (DeePMD-kit's DescrptSeA.enable_mixed_precision sets filter_precision to
    output_prec whatever `precision` says).

    Non-trainable variables davg, dstd [ntypes, ndescrpt] (DeePMD-kit's `descrpt_attr/t_avg`,
    `t_std`), set by `set_statistics`.

    call(coord [nf, nall*3], atype [nf, nall], natoms [2+ntypes], box [nf, 9], mesh,
    type_embedding [ntypes, te] (se_a_ebd_v2: [ntypes + 1, te], zero row last) or None) -> dict with descriptor [nf, nloc, M1*M2] and the
    environment matrix outputs rmat [nf, nloc*ndescrpt], rmat_deriv [nf, nloc*ndescrpt*3],
    rij [nf, nloc*nnei*3], nlist [nf, nloc*nnei]. A model that needs forces calls the two halves,
    `env_mat` and `descriptor_of_env_mat`, and differentiates the second with respect to rmat.
    """

    def __init__(self, settings: DescriptorConfig, tebd_dim: int = 0, name: str = "descriptor",
                 mixed_precision: Optional[MixedPrecisionConfig] = None, **kwargs):
        if not settings.sel_resolved:
            raise ValueError(f"descriptor sel must be a list of integers (resolve {settings.sel!r} "
                             "from the neighbour statistics first)")
        kwargs.pop("dtype", None)
        precision = settings.precision if mixed_precision is None else mixed_precision.output_prec
        compute = None if mixed_precision is None else mixed_precision.compute_prec
        self.mixed_precision = mixed_precision
        super().__init__(name=name, dtype=dtype_of(precision).name,
                         trainable=settings.trainable, **kwargs)
        self.settings = settings
        self.sel = list(settings.sel)
        self.ntypes = len(self.sel)
        self.rcut = settings.rcut
        self.rcut_smth = settings.rcut_smth
        self.neuron = list(settings.neuron)
        self.axis_neuron = settings.axis_neuron
        self.type_one_side = settings.type_one_side
        self.tebd_dim = int(tebd_dim)
        self.nnei = settings.nnei
        self.ndescrpt = 4 * self.nnei
        self._excluded = {(a, b) for a, b in settings.exclude_types} | {
            (b, a) for a, b in settings.exclude_types}
        self._mask = (exclusion_mask(settings.exclude_types, self.sel)
                      if settings.exclude_types else None)
        self._offsets = np.concatenate([[0], np.cumsum(self.sel)]).astype(int).tolist()

        # embedding nets, seeds advancing by one net's shift in build order
        shift = embedding_net_rand_seed_shift(self.neuron)
        count = 0

        def net(scope, suffix, name):
            nonlocal count
            s = None if settings.seed is None else int(settings.seed) + shift * count
            count += 1
            return MLP(self.neuron, activation=settings.activation_function,
                       resnet_dt=settings.resnet_dt, precision=precision,
                       trainable=settings.trainable, seed=s, kind="embedding", scope=scope,
                       suffix=suffix, name=name, compute_precision=compute)

        self._net_names: list[str] = []
        self.net_tables = None  # compressed: {net attribute name: NetTable} (enable_compression)
        self.stripped = settings.stripped_type_embedding
        if self.stripped:
            if self.tebd_dim <= 0:
                raise ValueError("se_a_ebd_v2 needs a type embedding (tebd_dim > 0)")
            # the type net first, then the radial net, seeds in that order (DeePMD-kit's
            # deepmd/tf/descriptor/se_a.py: DescrptSeA._filter_lower, tebd_input_mode "strip")
            side = "one_side" if self.type_one_side else "two_side"
            self._add_net("type_net", net("filter_type_all", f"_{side}_ebd",
                                          f"filter_type_all_{side}_ebd"))
            self._add_net("filter_type_all", net("filter_type_all", "", "filter_type_all"))
        elif self.tebd_dim > 0:
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

    def enable_compression(self, tables: dict) -> None:
        """Replaces the embedding nets by their tables {net attribute name: NetTable}
        (model/tabulation.py), as DeePMD-kit's DescrptSeA.enable_compression; excluded pairs
        have none. Only models without type embedding."""
        if self.tebd_dim > 0:
            raise ValueError("compression of a type-embedding descriptor is not supported")
        self.net_tables = dict(tables)

    def _pair_tables(self) -> list:
        """The tables by neighbour type (type_one_side) or by centre and neighbour type, None
        for an excluded pair, as model/embedding_blocks.py's a_of_tables takes them."""
        tables = self.net_tables
        if self.type_one_side:
            return [tables.get(f"filter_type_all_{j}") for j in range(self.ntypes)]
        return [[tables.get(f"filter_type_{i}_{j}") for j in range(self.ntypes)]
                for i in range(self.ntypes)]

    def freeze_compressed(self, tables: dict) -> None:
        """enable_compression with the tables of a compressed graph, the embedding nets no
        longer trained (DeePMD-kit trains the fitting net only from a compressed graph)."""
        self.enable_compression(tables)
        for mlp in self.nets():
            mlp.trainable = False

    def _add_net(self, attr: str, mlp: MLP) -> None:
        setattr(self, attr, mlp)
        self._net_names.append(attr)

    # -- sizes -----------------------------------------------------------------------------

    @property
    def dim_out(self) -> int:
        """M1 * M2."""
        return self.settings.dim_out

    @property
    def embedding_input_width(self) -> int:
        """Width of the embedding nets' input: s~, and the type embeddings with tebd_dim > 0."""
        if self.tebd_dim == 0 or self.stripped:
            return 1
        return 1 + self.tebd_dim * (1 if self.type_one_side else 2)

    def net_input_widths(self) -> list[int]:
        """The input width of each net of `nets()`."""
        if self.stripped:
            return [self.tebd_dim * (1 if self.type_one_side else 2), 1]
        return [self.embedding_input_width] * len(self._net_names)

    def net_names(self) -> list[str]:
        """The embedding nets' attribute names (`filter_type_i_j`, `filter_type_all_j`, ...) in
        build (and seed) order."""
        return list(self._net_names)

    def nets(self) -> list[MLP]:
        """The embedding nets in build (and seed) order."""
        return [getattr(self, name) for name in self._net_names]

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape=None):
        self.davg = self.add_weight(name="t_avg", shape=(self.ntypes, self.ndescrpt),
                                    initializer="zeros", dtype=_INTERFACE_DTYPE, trainable=False)
        self.dstd = self.add_weight(name="t_std", shape=(self.ntypes, self.ndescrpt),
                                    initializer="ones", dtype=_INTERFACE_DTYPE, trainable=False)
        for mlp, width in zip(self.nets(), self.net_input_widths()):
            mlp.build((None, width))

    def set_statistics(self, davg, dstd) -> None:
        """Assigns davg and dstd, each [ntypes, ndescrpt] or per component [ntypes, 4] (tiled
        over the slots), as computed by `data/stats.py` (set_davg_zero is applied there)."""
        if not self.built:
            self.build()
        self.davg.assign(self._tile(davg, "davg"))
        self.dstd.assign(self._tile(dstd, "dstd"))

    def _tile(self, value, what: str) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.shape == (self.ntypes, 4):
            value = np.tile(value, (1, self.nnei))
        if value.shape != (self.ntypes, self.ndescrpt):
            raise ValueError(f"{what} must have shape ({self.ntypes}, {self.ndescrpt}) or "
                             f"({self.ntypes}, 4); got {value.shape}")
        return value

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit graph name."""
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
        live = self.sel if nlist is None else live_counts(nlist, self.sel, self._offsets)
        empty = None if nlist is None else empty_rows(self.davg, self.dstd, self.ntypes,
                                                      self.nnei, prec, self._mask)
        centres = centre_types(natoms, self.ntypes)
        m1 = self.neuron[-1]
        if self.stripped:
            if type_embedding is None or nlist is None:
                raise ValueError(f"{self.name} (se_a_ebd_v2) needs the padded type_embedding "
                                 "table and the neighbour list")
            a_mat = a_with_stripped_type_embedding(
                self.filter_type_all, self.type_net, rmat, nlist, live, empty, centres,
                tf.cast(type_embedding, prec), self._offsets, self.type_one_side,
                *self._smooth_weights(rmat, empty, centres))
        elif self.net_tables is not None:
            a_mat = a_of_tables(rmat, natoms, self._pair_tables(), self._offsets, m1)
        elif self.tebd_dim > 0:
            if type_embedding is None:
                raise ValueError(f"{self.name} was built for type embedding: pass the "
                                 "type_embedding table")
            a_mat = a_with_type_embedding(self.filter_type_all, rmat, live, empty, centres,
                                          tf.cast(type_embedding, prec), self.sel,
                                          self._offsets, self.type_one_side)
        elif self.type_one_side:
            nets = [getattr(self, f"filter_type_all_{j}") for j in range(self.ntypes)]
            a_mat = a_of_blocks(rmat, nets, live, empty, centres, self._offsets, m1)
        else:
            nets_of_centre = [[getattr(self, f"filter_type_{i}_{j}", None)
                               if (i, j) not in self._excluded else None
                               for j in range(self.ntypes)] for i in range(self.ntypes)]
            a_mat = a_per_centre_type(rmat, natoms, nets_of_centre, live, empty, self._offsets,
                                      m1)
        d = descriptor_of_embedding(a_mat / self.nnei, self.axis_neuron)
        return tf.cast(d, _INTERFACE_DTYPE)

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

    def call(self, coord, atype, natoms, box, mesh, type_embedding=None):
        rmat, rmat_deriv, rij, nlist = self.env_mat(coord, atype, natoms, box, mesh)
        descriptor = self.descriptor_of_env_mat(rmat, atype, natoms, type_embedding, nlist)
        return {"descriptor": descriptor, "rmat": rmat, "rmat_deriv": rmat_deriv, "rij": rij,
                "nlist": nlist}

    def get_config(self):
        return {"name": self.name, "settings": self.settings, "tebd_dim": self.tebd_dim,
                "mixed_precision": self.mixed_precision}
