"""DPA-1: the se_atten and se_atten_v2 descriptors (DeePMD-kit 3.2's TensorFlow
deepmd/tf/descriptor/se_atten.py: DescrptSeAtten, se_atten_v2.py: DescrptSeAttenV2).

One sel block of S slots holds the neighbours of every type, nearest first (ProdEnvMatAMix);
davg/dstd are per centre type. With A the type embedding table padded with a zero row (the type
of empty slots), s~ = R~[..., 0] and t_j the type of slot j:

    concat:  G0_j = N([s~_j, A[t_j], A[t_i]])           (A[t_i] dropped with type_one_side)
    strip:   G0_j = N_s(s~_j) (1 + w_j T[t_i, t_j])     T: a net on [A[b], A[a]] per type pair
    G = attention layers (attention.py) on G0
    X = R~^T G / S,   D = X^T X[:, :M2]

smooth (se_atten_v2 always): w = clip(1 - (1 - rcut_smth s)^3, 0, 1) of the raw s (R~[..., 0]
dstd + davg of the centre type) weights the type net and the attention, so that the energy is
continuous at the cut-off; without it the attention masks empty slots and jumps there.
exclude_types: an excluded (centre type, neighbour type) slot has R~ zeroed and no attention
(not smooth), or R~ set to the centre type's davg[0] and w to 0 (smooth), as DeePMD-kit does.
In the training step the atoms are attended in groups by their number of neighbours, each group
over its live slots alone, and the slots past them are accounted for once per centre type
(`_live_and_tail`, attention.py); the frozen graph attends over every slot.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .attention import AttentionLayer, angular_gate, attention_gates
from .descriptor import (EnvMatDescriptor, centre_types, descriptor_of_embedding,
                         type_embedding_switch)
from .embedding_blocks import block_counts, empty_rows
from .env_mat import INTERFACE_DTYPE, raw_env_mat
from .kernels import contract, training_step
from .se_a_ebd_v2 import stripped_type_table

__all__ = ["DescriptorSeAtten"]

# the training step attends the atoms in this many groups, by their number of neighbours
ATTENTION_GROUPS = 4


class DescriptorSeAtten(EnvMatDescriptor):
    """se_atten / se_atten_v2 descriptor layer (the protocol of descriptor.py: Descriptor);
    settings: config/descriptors.py: SeAttenConfig; tebd_dim: the type embedding's width;
    ntypes: the model's number of types. It takes the type embedding table padded with a zero
    row (`type_embedding_input`)."""

    def __init__(self, settings, tebd_dim: int = 0, name: str = "descriptor",
                 mixed_precision=None, ntypes=None, **kwargs):
        super().__init__(settings, tebd_dim, name, mixed_precision, ntypes=ntypes, **kwargs)
        if self.tebd_dim <= 0:
            raise ValueError(f"{settings.type} needs a type embedding (tebd_dim > 0)")
        self.axis_neuron = settings.axis_neuron
        self.strip = settings.stripped_type_embedding
        self.smooth = settings.smooth
        te = self.tebd_dim
        # the nets in DeePMD-kit's build (and seed) order, then the attention layers
        if self.strip:
            self.add_net("filter_type_all", 1, "filter_type_all")
            self.add_net("type_net", 2 * te, "filter_type_all", "_two_side_ebd",
                         name="filter_type_all_two_side_ebd")
        else:
            self.add_net("filter_type_all", 1 + te * (1 if settings.type_one_side else 2),
                         "filter_type_all")
        seed = (None if settings.seed is None
                else int(settings.seed) + self._seed_shift * len(self.net_names()))
        self.attention_layers = []
        for index in range(settings.attn_layer):
            layer = AttentionLayer(self.neuron[-1], settings.attn, index,
                                   None if seed is None else seed + 5 * index,
                                   precision=self.precision, trainable=settings.trainable,
                                   trainable_ln=settings.trainable_ln, ln_eps=settings.ln_eps)
            setattr(self, f"attention_{index}", layer)  # tracked for checkpoints
            self.attention_layers.append(layer)
        # 1/0 per (centre type, neighbour type or ntypes for an empty slot)
        table = np.ones((self.ntypes, self.ntypes + 1))
        for a, b in settings.exclude_types:
            table[a, b] = table[b, a] = 0.0
        self.pair_mask = table if settings.exclude_types else None

    def build(self, input_shape=None):
        super().build(input_shape)
        for layer in self.attention_layers:
            layer.build()

    def stat_env_mat(self, batch) -> np.ndarray:
        """The statistics input: the batch's environment matrix with davg 0 and dstd 1,
        [nframes, natoms, 4 S], the slots of excluded type pairs zeroed (as DeePMD-kit's
        statistics sub-graph does; they still count)."""
        raw, nlist = raw_env_mat(batch, self.sel, self.rcut, self.rcut_smth, ntypes=self.ntypes,
                                 with_nlist=True)
        if self.pair_mask is None:
            return raw
        atype = np.asarray(batch["type"], dtype=np.int64).reshape(nlist.shape[0], -1)
        nei_type = np.where(nlist >= 0, np.take_along_axis(
            atype, np.maximum(nlist, 0).reshape(len(atype), -1), axis=1).reshape(nlist.shape),
            self.ntypes)
        centres = np.clip(atype, 0, self.ntypes - 1)[..., None]
        keep = self.pair_mask[centres, nei_type]  # [nframes, natoms, S]
        return raw * np.repeat(keep, 4, axis=-1)

    def type_embedding_input(self, table):
        """The table [ntypes, te] with the zero row of empty slots appended (`t_typeebd`)."""
        return tf.concat([table, tf.zeros([1, table.shape[-1]], table.dtype)], axis=0)

    def tabulation_refusal(self, from_nets: bool = True):
        """Always: deepmd_tebd compresses no model with type embedding."""
        return (f"model compression is not supported for {self.settings.type}: deepmd_tebd "
                "compresses no model with type embedding (DeePMD-kit 3.2 tabulates an "
                "attn_layer 0 strip model only). The uncompressed model runs as it is")

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit graph name, the attention layers' included."""
        names = super().graph_variables()
        for layer in self.attention_layers:
            names.update(layer.graph_variables())
        return names

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None, nlist=None):
        """D [nf, nloc, M1*M2] (float64) from rmat [nf, nloc*4S], the padded type_embedding
        table [ntypes + 1, te] and the neighbour list nlist [nf, nloc*S] (indices into the
        atoms of atype [nf, nall], -1 for empty slots)."""
        if type_embedding is None or nlist is None:
            raise ValueError(f"{self.name} ({self.settings.type}) needs the padded "
                             "type_embedding table and the neighbour list")
        natoms = tf.cast(natoms, tf.int32)
        nloc, nall, s = natoms[0], natoms[1], self.nnei
        rmat = tf.reshape(rmat, [-1, nloc, s, 4])  # float64, as the op gives it
        nlist = tf.reshape(nlist, [-1, nloc, s])
        occupied = nlist >= 0
        atype = tf.reshape(tf.cast(atype, tf.int32), [-1, nall])
        nei_type = tf.where(occupied, tf.gather(atype, tf.maximum(nlist, 0), batch_dims=1),
                            self.ntypes)
        centres = centre_types(atype, natoms, self.ntypes)
        prec = self.compute_dtype
        weight = tf.cast(occupied, INTERFACE_DTYPE)
        if self.smooth:
            weight = self._switch(rmat[..., 0], centres)
        if self.pair_mask is not None:
            keep = tf.gather_nd(tf.constant(self.pair_mask, INTERFACE_DTYPE),
                                tf.stack([tf.broadcast_to(centres[..., None], tf.shape(nei_type)),
                                          nei_type], axis=-1))
            if self.smooth:
                davg0 = tf.gather(self.davg[:, 0], centres)[..., None]
                rmat = tf.where(keep[..., None] > 0, rmat, davg0[..., None])
            else:
                rmat = rmat * keep[..., None]
            weight = weight * keep
        rmat, weight = tf.cast(rmat, prec), tf.cast(weight, prec)
        tebd = tf.cast(type_embedding, prec)
        if self.attention_layers and training_step():
            a_mat = self._live_and_tail(rmat, weight, nei_type, nlist, centres, tebd)
        else:
            a_mat = self._attended(tf.reshape(rmat, [-1, s, 4]), tf.reshape(weight, [-1, s]),
                                   tf.reshape(nei_type, [-1, s]), tf.reshape(centres, [-1]),
                                   tebd)
        d = descriptor_of_embedding(a_mat / float(s), self.axis_neuron)
        return tf.cast(tf.reshape(d, [-1, nloc, self.dim_out]), INTERFACE_DTYPE)

    def _switch(self, s_tilde, centres):
        """The smooth weight w of slots whose s~ is s_tilde [..., S] around centre types
        centres [...] (descriptor.py: type_embedding_switch of the raw s)."""
        davg0 = tf.gather(self.davg[:, 0], centres)[..., None]
        dstd0 = tf.gather(self.dstd[:, 0], centres)[..., None]
        return type_embedding_switch(s_tilde * dstd0 + davg0, self.rcut_smth)

    def _attended(self, rmat, weight, nei_type, centres, tebd, absent=None):
        """R~^T G [n, 4, M1] of the rows rmat [n, S, 4] with their weights [n, S], types
        nei_type [n, S] and centre types centres [n]; absent: attention_gates' (the slots
        left out after these)."""
        return contract(rmat, self._attention(rmat, weight, nei_type, centres, tebd, absent))

    def _attention(self, rmat, weight, nei_type, centres, tebd, absent=None):
        """G [n, S, M1] after the attention layers (`_attended`'s arguments)."""
        g = self._neighbour_embedding(rmat, weight, nei_type, centres, tebd)
        if self.attention_layers:
            gates = attention_gates(weight, self.smooth,
                                    angular_gate(rmat) if self.settings.attn_dotr else None,
                                    self.settings.attn_mask, absent)
        for layer in self.attention_layers:
            g = layer(g, gates)
        return g

    def _live_and_tail(self, rmat, weight, nei_type, nlist, centres, tebd):
        """R~^T G [nf * nloc, 4, M1] as `_attended` of every slot of rmat [nf, nloc, S, 4]
        (weights and nei_type [nf, nloc, S], nlist's -1 the empty slots, centres [nf, nloc]).
        The atoms, sorted by their number of neighbours, are attended in ATTENTION_GROUPS
        groups of about equal size, each group over its live slots alone: up to the most
        neighbours an atom of the group has (ProdEnvMatAMix fills the nearest slots first).
        The slots past them are empty for every atom of the group: as keys they only add to
        the softmax's sums (`Gates.absent`); as queries their P is 0, so that each layer maps
        their G alone (LN(G + b_o)), and their share of R~^T G is that of the rows -davg/dstd
        of the centre type (weight 0) from the group's live count on (`_tail_shares`)."""
        s = self.nnei

        def per_atom(x):  # [nf * nloc, S, ...]
            return tf.reshape(x, tf.concat([[-1, s], tf.shape(x)[3:]], axis=0))

        rmat, weight, nei_type = per_atom(rmat), per_atom(weight), per_atom(nei_type)
        centres = tf.reshape(centres, [-1])
        counts = block_counts(nlist, [0, s])[0]  # [nf * nloc]
        order = tf.argsort(counts, stable=True)
        atoms = tf.size(counts)
        shares = self._tail_shares(rmat.dtype, tebd)
        parts = []
        for g in range(ATTENTION_GROUPS):
            group = order[atoms * g // ATTENTION_GROUPS:atoms * (g + 1) // ATTENTION_GROUPS]
            live = tf.maximum(tf.reduce_max(tf.gather(counts, group)), 0)  # no atoms: 0

            def head(x):  # the group's atoms, their live slots
                return tf.gather(x, group)[:, :live]

            group_centres = tf.gather(centres, group)
            a_mat = self._attended(head(rmat), head(weight), head(nei_type), group_centres,
                                   tebd, absent=s - live)
            tail = tf.gather(tf.gather(shares, live, axis=1), group_centres)
            parts.append(a_mat + tail)
        return tf.gather(tf.concat(parts, axis=0), tf.argsort(order))  # the atoms' order

    def _tail_shares(self, dtype, tebd):
        """[ntypes, S + 1, 4, M1]: at [t, L] the share of R~^T G of the empty slots L..S-1
        of an atom of centre type t: their rows -davg/dstd, weight 0 (each row's G mapped
        alone by the attention layers), summed from the last slot on."""
        empty = empty_rows(self.davg, self.dstd, self.ntypes, self.nnei, INTERFACE_DTYPE)
        types = tf.range(self.ntypes, dtype=tf.int32)
        weight = (self._switch(empty[..., 0], types) if self.smooth
                  else tf.zeros(tf.shape(empty)[:2], empty.dtype))
        empty, weight = tf.cast(empty, dtype), tf.cast(weight, dtype)  # [ntypes, S, 4], [.., S]
        g = self._attention(empty, weight, tf.fill(tf.shape(empty)[:2], self.ntypes), types,
                            tebd)
        terms = empty[..., :, None] * g[..., None, :]  # [ntypes, S, 4, M1]
        suffix = tf.cumsum(terms, axis=1, reverse=True)
        return tf.pad(suffix, [[0, 0], [0, 1], [0, 0], [0, 0]])  # [t, S]: no slot left out

    def _neighbour_embedding(self, rmat, weight, nei_type, centres, tebd):
        """G0 [n, S, M1] of rmat [n, S, 4], the slots' weights, types [n, S] and the centre
        types [n]."""
        s_tilde = rmat[..., :1]
        if self.strip:
            table = stripped_type_table(self.type_net, tebd, type_one_side=False)
            pair = centres[:, None] * (self.ntypes + 1) + nei_type
            tau = tf.gather(table, pair)
            if self.smooth:
                tau = tau * weight[..., None]
            g = self.filter_type_all(s_tilde)
            return g * tau + g
        parts = [s_tilde, tf.gather(tebd, nei_type)]
        if not self.settings.type_one_side:
            parts.append(tf.broadcast_to(tf.gather(tebd, centres)[:, None, :],
                                         tf.concat([tf.shape(nei_type), [tebd.shape[-1]]], 0)))
        return self.filter_type_all(tf.concat(parts, axis=-1))
