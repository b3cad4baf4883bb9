"""What every descriptor is to the rest of the package, and the parts the se_e2_a family shares.

`Descriptor` is the protocol: the model (energy_model.py), the statistics (data/stats.py), the
freezer and the compression (infer/) use a descriptor through it alone, and the model picks the
class from its table by the descriptor type. `EnvMatDescriptor` implements the protocol's
environment-matrix half for descriptors on ProdEnvMatA (per-type sel, davg/dstd per centre
type, exclusion of type pairs); se_e2_a (se_e2_a.py) and se_a_ebd_v2 (se_a_ebd_v2.py) add their
nets and their descriptor of the environment matrix.

Shared math: `descriptor_of_embedding` (D = A^T A<), `type_embedding_switch` (the smooth switch
of the type net's output), `centre_types` (from the atom types, so atoms may come in any order),
`exclusion_mask`, `slot_types`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ..config.objects import DescriptorConfig, MixedPrecisionConfig
from ..precision import dtype_of
from .env_mat import INTERFACE_DTYPE, prod_env_mat_a, raw_env_mat
from .kernels import contract
from .network import MLP, embedding_net_rand_seed_shift

__all__ = [
    "Descriptor",
    "EnvMatDescriptor",
    "centre_types",
    "descriptor_of_embedding",
    "exclusion_mask",
    "slot_types",
    "type_embedding_switch",
]


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


def centre_types(atype, natoms, ntypes: int):
    """The type of each local atom, [nf, nloc], from the atom types atype [nf, nall] (atoms in
    any order; natoms [2+ntypes] gives nloc and nall); clipped to [0, ntypes) so that it can
    index per-type tables."""
    natoms = tf.cast(natoms, tf.int32)
    atype = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])
    return tf.clip_by_value(atype[:, :natoms[0]], 0, ntypes - 1)


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
    d = contract(a_mat, a_m2)  # [..., M1, M2]: A^T A<, on TebdBatchMatMul in training
    return tf.reshape(d, tf.concat([tf.shape(d)[:-2], [m1 * axis_neuron]], axis=0))


class Descriptor(keras.layers.Layer):
    """The descriptor protocol: what the model, the statistics, freezing, compression and weight
    naming need of a descriptor. A descriptor type is one subclass, constructed as
    `cls(settings, tebd_dim=0, name="descriptor", mixed_precision=None)` and found by its type
    in model/energy_model.py's DESCRIPTORS (its settings class in config/descriptors.py's
    DESCRIPTOR_SETTINGS).

    Sizes: ntypes, sel, nnei, rcut, dim_out (the width of D per atom).
    `env_mat(coord, atype, natoms, box, mesh)` -> (rmat, rmat_deriv, rij, nlist) in
    ProdEnvMatA's layout, whose rmat_deriv, rij and nlist the force and virial ops take
    (n_a_sel = nnei); `descriptor_of_env_mat(rmat, atype, natoms, type_embedding, nlist)` -> D
    [nf, nloc, dim_out], which the model differentiates with respect to rmat.
    Statistics: `stat_env_mat(batch)` (the environment matrix with davg 0, dstd 1, NumPy
    [nf, natoms, 4 nnei]) is what data/stats.py sums; `set_statistics(davg, dstd)` takes the
    result. Weights: `graph_variables()` {DeePMD-kit graph name: variable}; `nets()` and
    `net_names()` the embedding nets (which a compressed graph holds as tables).
    Type embedding: `type_embedding_input(table)` the table as the descriptor takes it.
    Tables: `tabulation_refusal(from_nets)` says why the descriptor cannot run on tables (None:
    it can), `tabulate(...)` makes them from its nets, `enable_compression(tables)` /
    `freeze_compressed(tables)` run it on them (`net_tables`). By default a descriptor cannot
    be tabulated."""

    net_tables = None  # compressed: {net name: NetTable}

    def type_embedding_input(self, table):
        """The type embedding table [ntypes, te] as this descriptor takes it (unchanged)."""
        return table

    def tabulation_refusal(self, from_nets: bool = True) -> Optional[str]:
        """Why this descriptor cannot run on tables (from_nets: nor tabulate its own nets);
        None when it can."""
        return (f"model compression is not supported for the {self.settings.type} descriptor: "
                "deepmd_tebd tabulates se_e2_a embedding nets without type embedding only")

    def call(self, coord, atype, natoms, box, mesh, type_embedding=None):
        rmat, rmat_deriv, rij, nlist = self.env_mat(coord, atype, natoms, box, mesh)
        descriptor = self.descriptor_of_env_mat(rmat, atype, natoms, type_embedding, nlist)
        return {"descriptor": descriptor, "rmat": rmat, "rmat_deriv": rmat_deriv, "rij": rij,
                "nlist": nlist}

    def get_config(self):
        return {"name": self.name, "settings": self.settings, "tebd_dim": self.tebd_dim,
                "mixed_precision": self.mixed_precision, "ntypes": self.ntypes}


class EnvMatDescriptor(Descriptor):
    """A descriptor on ProdEnvMatA: per-type sel, davg/dstd [ntypes, 4 nnei] per centre type
    (non-trainable variables `descrpt_attr/t_avg`, `t_std`), the exclusion mask of
    `exclude_types` pairs, and embedding nets made by `embedding_net` (seeds advancing by one
    net's shift in build order, DeePMD-kit's order) and kept in build order by `add_net`.

    settings: the `model/descriptor` section (sel resolved: its length is ntypes); tebd_dim:
    width of the type embedding (0: none); mixed_precision: the `training/mixed_precision`
    settings or None. With them the nets' weights and the contractions are in output_prec and
    the embedding nets compute in compute_prec (DeePMD-kit's DescrptSeA.enable_mixed_precision
    sets filter_precision to output_prec whatever `precision` says)."""

    def __init__(self, settings: DescriptorConfig, tebd_dim: int = 0, name: str = "descriptor",
                 mixed_precision: Optional[MixedPrecisionConfig] = None,
                 ntypes: Optional[int] = None, **kwargs):
        if not settings.sel_resolved:
            raise ValueError(f"descriptor sel must be a list of integers (resolve {settings.sel!r} "
                             "from the neighbour statistics first)")
        kwargs.pop("dtype", None)
        self.precision = (settings.precision if mixed_precision is None
                          else mixed_precision.output_prec)
        self.compute_precision = None if mixed_precision is None else mixed_precision.compute_prec
        self.mixed_precision = mixed_precision
        super().__init__(name=name, dtype=dtype_of(self.precision).name,
                         trainable=settings.trainable, **kwargs)
        self.settings = settings
        self.sel = list(settings.sel)
        # per-type sel blocks: one per type; one block for all types (ProdEnvMatAMix): the
        # model's number of types
        self.mixed_types = settings.mixed_types
        self.ntypes = int(ntypes) if self.mixed_types else len(self.sel)
        self.rcut = settings.rcut
        self.rcut_smth = settings.rcut_smth
        self.neuron = list(settings.neuron)
        self.tebd_dim = int(tebd_dim)
        self.nnei = settings.nnei
        self.ndescrpt = 4 * self.nnei
        self.excluded = frozenset({(a, b) for a, b in settings.exclude_types} | {
            (b, a) for a, b in settings.exclude_types})
        self.mask = (exclusion_mask(settings.exclude_types, self.sel)
                     if settings.exclude_types and not self.mixed_types else None)
        self.offsets = np.concatenate([[0], np.cumsum(self.sel)]).astype(int).tolist()
        self._net_names: list[str] = []
        self._net_inputs: list[int] = []
        self._seed_shift = embedding_net_rand_seed_shift(self.neuron)

    # -- nets ------------------------------------------------------------------------------

    def embedding_net(self, scope: str, suffix: str, name: str) -> MLP:
        """The next embedding net in build order (its seed: seed + shift x nets built before)."""
        settings = self.settings
        seed = (None if settings.seed is None
                else int(settings.seed) + self._seed_shift * len(self._net_names))
        return MLP(self.neuron, activation=settings.activation_function,
                   resnet_dt=settings.resnet_dt, precision=self.precision,
                   trainable=settings.trainable, seed=seed, kind="embedding", scope=scope,
                   suffix=suffix, name=name, compute_precision=self.compute_precision)

    def add_net(self, attr: str, in_width: int, scope: str = "", suffix: str = "",
                name: Optional[str] = None) -> MLP:
        """Builds the next embedding net (input width in_width) as the attribute `attr`, its
        variables named `<scope>/matrix_<k><suffix>`, ... in graphs; name: the layer's name
        (default attr)."""
        mlp = self.embedding_net(scope, suffix, name or attr)
        setattr(self, attr, mlp)
        self._net_names.append(attr)
        self._net_inputs.append(int(in_width))
        return mlp

    def net_names(self) -> list[str]:
        """The embedding nets' attribute names in build (and seed) order."""
        return list(self._net_names)

    def nets(self) -> list[MLP]:
        """The embedding nets in build (and seed) order."""
        return [getattr(self, name) for name in self._net_names]

    @property
    def dim_out(self) -> int:
        """Width of the descriptor per atom."""
        return self.settings.dim_out

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape=None):
        self.davg = self.add_weight(name="t_avg", shape=(self.ntypes, self.ndescrpt),
                                    initializer="zeros", dtype=INTERFACE_DTYPE, trainable=False)
        self.dstd = self.add_weight(name="t_std", shape=(self.ntypes, self.ndescrpt),
                                    initializer="ones", dtype=INTERFACE_DTYPE, trainable=False)
        for mlp, width in zip(self.nets(), self._net_inputs):
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
        """ProdEnvMatA (ProdEnvMatAMix with one sel block) with this descriptor's cutoffs, sel
        and statistics (env_mat.py)."""
        return prod_env_mat_a(coord, atype, natoms, box, mesh, self.davg, self.dstd, self.sel,
                              self.rcut, self.rcut_smth, mixed_types=self.mixed_types)

    def stat_env_mat(self, batch) -> np.ndarray:
        """The statistics input: the batch's environment matrix with davg 0 and dstd 1,
        [nframes, natoms, 4 nnei]."""
        return raw_env_mat(batch, self.sel, self.rcut, self.rcut_smth,
                           ntypes=self.ntypes if self.mixed_types else None)

    def masked_env_mat(self, rmat, atype, natoms):
        """rmat [nf, nloc*ndescrpt] as [nf, nloc, nnei, 4] in the compute dtype, the rows of
        excluded (centre type, neighbour type) pairs zeroed."""
        natoms = tf.cast(natoms, tf.int32)
        prec = self.compute_dtype
        rmat = tf.reshape(tf.cast(rmat, prec), [-1, natoms[0], self.nnei, 4])
        if self.mask is not None:
            centres = centre_types(atype, natoms, self.ntypes)
            rmat = rmat * tf.gather(tf.constant(self.mask, prec), centres)[..., None]
        return rmat
