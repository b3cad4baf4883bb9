"""The se_e2_a descriptor (DeepPot-SE, two-body embedding, angular and radial information), with
or without type embedding.

Per centre atom i with normalised environment matrix R~ [nnei, 4] (rows (s, s x/r, s y/r, s z/r)
minus davg, divided by dstd, both of the centre's type) and embedding matrix G [nnei, M1]:

    A = R~^T G / nnei  [4, M1],   D = A^T A[:, :M2]  [M1, M2],  flattened row-major (a M2 + b).

G comes from embedding nets applied to s~ = R~[:, 0]:

* with type embedding: ONE net on [s~, tebd[slot type]] (type_one_side) or
  [s~, tebd[slot type], tebd[centre type]], where the slot type is the type of the slot's sel
  block (empty slots too); the centre types come from the atom types, so the local atoms may
  come in any order;
* without: one net per neighbour type j on its block of slots (type_one_side: Nt nets), or one
  per (centre type i, neighbour type j) pair (Nt^2 nets, centres sliced by the natoms counts:
  these per-type nets need the local atoms sorted by type); excluded pairs have no net and
  contribute nothing. Inside the training step on the CPU all the per-type nets run as one
  stack in one fused op, each slot through the net of its (centre,) neighbour type
  (embedding_blocks.a_of_stacked_nets), so the step's graph does not grow with Nt^2.

`exclude_types` pairs (symmetric) zero the rows of R~ between those types. How the nets meet the
blocks of R~ is in `embedding_blocks.py`. Without type embedding the nets can be replaced by
tables (`dp compress`, model/tabulation.py).
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from .descriptor import EnvMatDescriptor, centre_types, descriptor_of_embedding
from .embedding_blocks import (a_of_blocks, a_of_stacked_nets, a_of_tables,
                               a_per_centre_type, a_with_type_embedding, empty_rows,
                               live_counts)
from .env_mat import INTERFACE_DTYPE
from .kernels import fusable
from .network import MLP

__all__ = ["DescriptorSeA"]


class DescriptorSeA(EnvMatDescriptor):
    """se_e2_a descriptor layer (the protocol of descriptor.py: Descriptor).

    settings: the se_e2_a section (config/descriptors.py: SeAConfig); tebd_dim: width of the
    type embedding (0: per-type nets). call(...) -> dict with descriptor [nf, nloc, M1*M2] and
    the environment matrix outputs; a model that needs forces calls the two halves, `env_mat`
    and `descriptor_of_env_mat`, and differentiates the second with respect to rmat.
    """

    def __init__(self, settings, tebd_dim: int = 0, name: str = "descriptor",
                 mixed_precision=None, **kwargs):
        super().__init__(settings, tebd_dim, name, mixed_precision, **kwargs)
        self.axis_neuron = settings.axis_neuron
        self.type_one_side = settings.type_one_side
        # per net, the (centre type or None, neighbour type) pair it embeds
        self._pairs: list[tuple[Optional[int], Optional[int]]] = []
        if self.tebd_dim > 0:
            self.add_net("filter_type_all", self.embedding_input_width, "filter_type_all")
            self._pairs.append((None, None))
        elif self.type_one_side:
            for j in range(self.ntypes):
                self.add_net(f"filter_type_all_{j}", 1, "filter_type_all", f"_{j}")
                self._pairs.append((None, j))
        else:
            for i in range(self.ntypes):
                for j in range(self.ntypes):
                    if (i, j) not in self.excluded:
                        self.add_net(f"filter_type_{i}_{j}", 1, f"filter_type_{i}", f"_{j}")
                        self._pairs.append((i, j))

    @property
    def embedding_input_width(self) -> int:
        """Width of the embedding nets' input: s~, and the type embeddings with tebd_dim > 0."""
        if self.tebd_dim == 0:
            return 1
        return 1 + self.tebd_dim * (1 if self.type_one_side else 2)

    # -- tables (dp compress, --init-frz-model of a compressed graph) --------------------------

    def tabulation_refusal(self, from_nets: bool = True) -> Optional[str]:
        """Why this descriptor cannot run on tables (from_nets: nor tabulate its nets); None when
        it can."""
        if self.tebd_dim > 0:
            return ("model compression is not supported for se_e2_a with type_embedding: "
                    "compression tabulates each embedding net as a function of s(r) alone, and "
                    "the shared embedding net of a type-embedding model also takes the atom "
                    "types' embeddings as input, so it cannot be tabulated. The uncompressed "
                    "model runs as it is")
        if not self.net_names():
            return "every pair of types is excluded, there is no embedding net to tabulate"
        if from_nets and self.settings.resnet_dt:
            return ("model compression needs descriptor resnet_dt false (DeePMD-kit's "
                    "DescrptSeA.enable_compression refuses it too)")
        if from_nets and self.settings.activation_function != "tanh":
            return ("deepmd_tebd tabulates tanh embedding nets only (activation "
                    f"{self.settings.activation_function})")
        return None

    def tabulate(self, min_nbor_dist: float, extrapolate: float, step: float,
                 frequency: int) -> dict:
        """{net name: NetTable} of every embedding net (DeePMD-kit's DPTabulate.build with
        stride1 = 10 step): the range of centre type i for the net of pair (i, j); for a
        one-side net of neighbour type j, the widest range over the centre types that use it."""
        from .tabulation import embedding_table, env_mat_range

        lower, upper = env_mat_range(self.davg.numpy(), self.dstd.numpy(), min_nbor_dist,
                                     self.rcut_smth, self.rcut)
        tables = {}
        for name, mlp, (i, j) in zip(self.net_names(), self.nets(), self._pairs):
            if i is None:
                use = [(c, j) not in self.excluded and self.sel[c] > 0
                       for c in range(self.ntypes)]
                ll, uu = lower[use].min(), upper[use].max()
            else:
                ll, uu = lower[i], upper[i]
            hidden, _ = mlp.layer_variables()
            layers = [(w.numpy(), b.numpy()) for w, b, _ in hidden]
            tables[name] = embedding_table(layers, ll, uu, extrapolate, step, 10 * step,
                                           frequency)
        return tables

    def enable_compression(self, tables: dict) -> None:
        """Replaces the embedding nets by their tables {net name: NetTable}
        (model/tabulation.py), as DeePMD-kit's DescrptSeA.enable_compression; excluded pairs
        have none."""
        reason = self.tabulation_refusal(from_nets=False)
        if reason is not None:
            raise ValueError(reason)
        self.net_tables = dict(tables)

    def freeze_compressed(self, tables: dict) -> None:
        """enable_compression with the tables of a compressed graph, the embedding nets no
        longer trained (DeePMD-kit trains the fitting net only from a compressed graph)."""
        self.enable_compression(tables)
        for mlp in self.nets():
            mlp.trainable = False

    def _pair_tables(self) -> list:
        """The tables by neighbour type (type_one_side) or by centre and neighbour type, None
        for an excluded pair, as embedding_blocks.a_of_tables takes them."""
        by_pair = {pair: self.net_tables.get(name)
                   for name, pair in zip(self.net_names(), self._pairs)}
        if self.type_one_side:
            return [by_pair.get((None, j)) for j in range(self.ntypes)]
        return [[by_pair.get((i, j)) for j in range(self.ntypes)] for i in range(self.ntypes)]

    # -- computation -----------------------------------------------------------------------

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None, nlist=None):
        """D [nf, nloc, M1*M2] (float64) from rmat [nf, nloc*ndescrpt]; atype [nf, nall] gives
        the centre types, natoms [2+ntypes] nloc (and the type blocks of the per-type nets).

        With the neighbour list nlist [nf, nloc*nnei], the slots of a sel block that are empty
        for every atom of the batch (the block's tail: neighbours come first) skip the
        embedding nets: all their rows are the centre type's (-davg/dstd) rows, so their share
        of A is computed once per centre type. D is the same; the gradient with respect to
        those rmat entries is zero, and the force and virial ops skip them (nlist -1)."""
        rmat = self.masked_env_mat(rmat, atype, natoms)
        m1 = self.neuron[-1]
        if self.net_tables is not None:
            a_mat = a_of_tables(rmat, tf.cast(natoms, tf.int32), self._pair_tables(),
                                self.offsets, m1)
        else:
            a_mat = self._a_of_nets(rmat, atype, natoms, type_embedding, nlist)
        d = descriptor_of_embedding(a_mat / self.nnei, self.axis_neuron)
        return tf.cast(d, INTERFACE_DTYPE)

    def _net_of_pair(self) -> list:
        """[ntypes][ntypes]: the position in nets() of the net of each (centre, neighbour type)
        pair; 0 for an excluded pair (a_of_stacked_nets: its rows add nothing)."""
        position = {pair: k for k, pair in enumerate(self._pairs)}
        key = (lambda i, j: (None, j)) if self.type_one_side else (lambda i, j: (i, j))
        return [[position.get(key(i, j), 0) for j in range(self.ntypes)]
                for i in range(self.ntypes)]

    def _a_of_nets(self, rmat, atype, natoms, type_embedding, nlist):
        """A * nnei [nf, nloc, 4, M1] from the embedding nets."""
        natoms = tf.cast(natoms, tf.int32)
        prec = rmat.dtype
        live = self.sel if nlist is None else live_counts(nlist, self.offsets)
        empty = None if nlist is None else empty_rows(self.davg, self.dstd, self.ntypes,
                                                      self.nnei, prec, self.mask)
        m1 = self.neuron[-1]
        if self.tebd_dim > 0:
            if type_embedding is None:
                raise ValueError(f"{self.name} was built for type embedding: pass the "
                                 "type_embedding table")
            return a_with_type_embedding(self.filter_type_all, rmat, live, empty,
                                         centre_types(atype, natoms, self.ntypes),
                                         tf.cast(type_embedding, prec), self.sel,
                                         self.offsets, self.type_one_side, nlist)
        nets = self.nets()
        if nets and all(fusable(mlp) for mlp in nets):  # the training step on the CPU
            return a_of_stacked_nets(nets, self._net_of_pair(), rmat, live, empty,
                                     centre_types(atype, natoms, self.ntypes), self.sel,
                                     self.offsets, nlist)
        if self.type_one_side:  # nets: one per neighbour type, in type order
            return a_of_blocks(rmat, nets, live, empty, centre_types(atype, natoms, self.ntypes),
                               self.offsets, m1)
        by_pair: dict[tuple, MLP] = dict(zip(self._pairs, nets))
        nets_of_centre = [[by_pair.get((i, j)) for j in range(self.ntypes)]
                          for i in range(self.ntypes)]
        return a_per_centre_type(rmat, natoms, nets_of_centre, live, empty, self.offsets, m1)
