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
        self._slot_types = slot_types(self.sel)
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

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None):
        """D [nf, nloc, M1*M2] (float64) from rmat [nf, nloc*ndescrpt]; atype [nf, nall] gives
        the centre types for exclude_types, natoms [2+ntypes] the type blocks."""
        natoms = tf.cast(natoms, tf.int32)
        nloc = natoms[0]
        prec = self.compute_dtype
        rmat = tf.reshape(tf.cast(rmat, prec), [-1, nloc, self.nnei, 4])
        if self._mask is not None:
            atype_loc = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])[:, :nloc]
            mask = tf.gather(tf.constant(self._mask, prec),
                             tf.clip_by_value(atype_loc, 0, self.ntypes - 1))
            rmat = rmat * mask[..., None]
        if self.tebd_dim > 0:
            if type_embedding is None:
                raise ValueError(f"{self.name} was built for type embedding: pass the "
                                 "type_embedding table")
            a_mat = self._a_with_type_embedding(rmat, natoms, tf.cast(type_embedding, prec))
        elif self.type_one_side:
            a_mat = self._a_of_blocks(rmat, [getattr(self, f"filter_type_all_{j}")
                                             for j in range(self.ntypes)])
        else:
            a_mat = self._a_per_centre_type(rmat, natoms)
        d = descriptor_of_embedding(a_mat / self.nnei, self.axis_neuron)
        return tf.cast(d, _INTERFACE_DTYPE)

    def _a_with_type_embedding(self, rmat, natoms, tebd):
        """R~^T G with one net on [s~, tebd[slot type] (, tebd[centre type])]: [nf, nloc, 4, M1]."""
        net = self.filter_type_all
        te = self.tebd_dim
        s = rmat[..., :1]
        if net.rules[0] is not None:  # the first layer is residual: it needs the whole input
            shape = tf.concat([tf.shape(rmat)[:3], [te]], axis=0)  # [nf, nloc, nnei, te]
            parts = [s, tf.broadcast_to(tf.gather(tebd, self._slot_types)[None, None], shape)]
            if not self.type_one_side:
                centre = tf.gather(tebd, centre_types(natoms, self.ntypes))  # [nloc, te]
                parts.append(tf.broadcast_to(centre[None, :, None, :], shape))
            g = net(tf.concat(parts, axis=-1))
        else:
            # first layer on [s, tebd_j (, tebd_i)] = s W_s + (tebd W_j)[j] (+ (tebd W_i)[i]):
            # the type rows are multiplied once per type, not once per neighbour slot
            blocks = [1, te] if self.type_one_side else [1, te, te]
            w, b = net.split_first_layer(blocks)
            pre = s * w[0][0] + (tf.gather(tf.matmul(tebd, w[1]), self._slot_types) + b)
            if not self.type_one_side:
                centre = tf.gather(tf.matmul(tebd, w[2]), centre_types(natoms, self.ntypes))
                pre = pre + centre[None, :, None, :]
            g = net(None, first_preactivation=pre)  # [nf, nloc, nnei, M1]
        return tf.matmul(rmat, g, transpose_a=True)

    def _a_of_blocks(self, rmat, nets):
        """Sum over neighbour types j of R~_j^T G_j, G_j = nets[j](s~_j) (None: excluded)."""
        a_mat = None
        for j, mlp in enumerate(nets):
            if mlp is None:
                continue
            block = rmat[:, :, self._offsets[j]:self._offsets[j + 1], :]
            term = tf.matmul(block, mlp(block[..., :1]), transpose_a=True)
            a_mat = term if a_mat is None else a_mat + term
        if a_mat is None:  # every neighbour type excluded
            shape = tf.shape(rmat)
            a_mat = tf.zeros(tf.concat([shape[:2], [4, self.neuron[-1]]], axis=0), rmat.dtype)
        return a_mat

    def _a_per_centre_type(self, rmat, natoms):
        """One set of nets per centre type, on that type's contiguous block of local atoms."""
        out = []
        start = tf.constant(0, tf.int32)
        for i in range(self.ntypes):
            count = natoms[2 + i]
            block = tf.slice(rmat, [0, start, 0, 0], [-1, count, -1, -1])
            nets = [getattr(self, f"filter_type_{i}_{j}", None) if (i, j) not in self._excluded
                    else None for j in range(self.ntypes)]
            out.append(self._a_of_blocks(block, nets))
            start = start + count
        return tf.concat(out, axis=1)

    def call(self, coord, atype, natoms, box, mesh, type_embedding=None):
        rmat, rmat_deriv, rij, nlist = self.env_mat(coord, atype, natoms, box, mesh)
        descriptor = self.descriptor_of_env_mat(rmat, atype, natoms, type_embedding)
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
