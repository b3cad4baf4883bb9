"""The energy model: type embedding (optional) -> descriptor -> energy fitting, with forces and
virials from the environment-matrix derivatives. The descriptor class comes from DESCRIPTORS,
keyed by the descriptor type; the model uses it through the protocol of descriptor.py alone.

Forces follow DeePMD-kit: g = d(sum of atomic energies)/d(rmat) by a gradient tape inside `call`,
then ProdForceSeA(g, rmat_deriv, nlist) and ProdVirialSeA(g, rmat_deriv, rij, nlist). Both ops have
registered gradients with respect to g, so a loss on forces or virials is differentiable with
respect to the weights (second derivatives through the tape).

The model takes the typed `model` settings (config/objects.py); it reads no raw script keys.
"""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from ..config.objects import MixedPrecisionConfig, ModelConfig
from ..data.stats import ModelStatistics
from ..op import op_module
from ..precision import ENERGY_DTYPE
from .fitting import EnergyFitting
from .se_a_ebd_v2 import DescriptorSeAEbdV2
from .se_atten import DescriptorSeAtten
from .se_e2_a import DescriptorSeA
from .type_embedding import TypeEmbedding

__all__ = ["DESCRIPTORS", "EnergyModel"]

# the descriptor layer of each (normalised) descriptor type; its settings class is
# config/descriptors.py's DESCRIPTOR_SETTINGS[type]
DESCRIPTORS = {"se_e2_a": DescriptorSeA, "se_a_ebd_v2": DescriptorSeAEbdV2,
               "se_atten": DescriptorSeAtten, "se_atten_v2": DescriptorSeAtten}


class EnergyModel(keras.layers.Layer):
    """Energy model of the input script's `model` section.

    settings: the `model` section as typed settings (config/objects.py); the presence of its
    type_embedding enables the type-embedding approach. mixed_precision: the
    `training/mixed_precision` settings (descriptor and fitting nets; the type embedding net,
    the environment matrix and the energy sums keep their precision, as in DeePMD-kit) or None. Statistics enter through
    `set_statistics(ModelStatistics)` (data/stats.py).

    call(coord [nf, nall*3], atype [nf, nall] int32, natoms [2+ntypes] int32, box [nf, 9],
    mesh int32, fparam [nf, numb_fparam] = None, aparam [nf, nloc*numb_aparam] = None) -> dict:
        energy [nf], force [nf, nall*3], virial [nf, 9], atom_energy [nf, nloc],
        atom_virial [nf, nall*9] (all float64), descriptor [nf, nloc, M1*M2], rmat
        [nf, nloc*ndescrpt], rmat_deriv, rij, nlist (the environment matrix op's outputs), and
        with type embedding type_embedding (as the descriptor takes it: [ntypes + 1, te] with
        se_a_ebd_v2's zero row). natoms = [nloc, nall, count of each type]; with type embedding
        the local atoms may come in any order, the per-type nets without it need them sorted by
        type.
    """

    def __init__(self, settings: ModelConfig, name: str = "energy_model",
                 mixed_precision: Optional[MixedPrecisionConfig] = None, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=ENERGY_DTYPE.name, **kwargs)
        self.settings = settings
        self.type_map = list(settings.type_map)
        self.ntypes = settings.ntypes
        if settings.type_embedding is not None:
            self.type_embedding = TypeEmbedding(self.ntypes, settings.type_embedding,
                                                name="type_embedding", type_map=self.type_map)
        else:
            self.type_embedding = None
        tebd_dim = settings.tebd_dim
        self.mixed_precision = mixed_precision
        descriptor = DESCRIPTORS[settings.descriptor.type]
        self.descriptor = descriptor(settings.descriptor, tebd_dim=tebd_dim, name="descriptor",
                                     mixed_precision=mixed_precision, ntypes=self.ntypes)
        self.fitting = EnergyFitting(settings.fitting, self.ntypes, self.descriptor.dim_out,
                                     tebd_dim=tebd_dim, name="fitting",
                                     mixed_precision=mixed_precision)

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape=None):
        if self.type_embedding is not None:
            self.type_embedding.build()
        self.descriptor.build()
        self.fitting.build()

    def set_statistics(self, stats: ModelStatistics) -> None:
        """Assigns the non-trainable statistics of the data: davg, dstd, the energy bias and
        the fparam/aparam normalisation."""
        if not self.built:
            self.build()
        self.descriptor.set_statistics(stats.davg, stats.dstd)
        self.fitting.set_statistics(stats.bias_atom_e, stats.fparam_avg, stats.fparam_istd,
                                    stats.aparam_avg, stats.aparam_istd)

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit v2.2.5 graph name (`type_embed_net/matrix_1`,
        `filter_type_all/matrix_1`, `descrpt_attr/t_avg`, `layer_0/matrix`, ...)."""
        if not self.built:
            self.build()
        names = {}
        if self.type_embedding is not None:
            names.update(self.type_embedding.graph_variables())
        names.update(self.descriptor.graph_variables())
        names.update(self.fitting.graph_variables())
        return names

    # -- computation -----------------------------------------------------------------------

    def type_embedding_table(self):
        """The type embedding table as the descriptor takes it ([ntypes, te]; se_a_ebd_v2 appends
        the zero row of empty slots), or None."""
        if self.type_embedding is None:
            return None
        return self.descriptor.type_embedding_input(self.type_embedding.table())

    def call(self, coord, atype, natoms, box, mesh, fparam=None, aparam=None):
        natoms = tf.cast(natoms, tf.int32)
        nall = natoms[1]
        coord = tf.reshape(tf.cast(coord, ENERGY_DTYPE), [-1, nall * 3])
        atype = tf.reshape(tf.cast(atype, tf.int32), [-1, nall])
        box = tf.reshape(tf.cast(box, ENERGY_DTYPE), [-1, 9])
        tebd = self.type_embedding_table()

        rmat, rmat_deriv, rij, nlist = self.descriptor.env_mat(coord, atype, natoms, box, mesh)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(rmat)
            descriptor = self.descriptor.descriptor_of_env_mat(rmat, atype, natoms, tebd,
                                                                  nlist)
            atom_energy = self.fitting(descriptor, atype, natoms, tebd, fparam, aparam)
            total = tf.reduce_sum(atom_energy)
        net_deriv = tape.gradient(total, rmat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        nnei = self.descriptor.nnei
        force = op_module.prod_force_se_a(net_deriv, rmat_deriv, nlist, natoms, n_a_sel=nnei,
                                          n_r_sel=0)
        virial, atom_virial = op_module.prod_virial_se_a(net_deriv, rmat_deriv, rij, nlist,
                                                         natoms, n_a_sel=nnei, n_r_sel=0)
        out = {
            "energy": tf.reduce_sum(atom_energy, axis=1),
            "force": tf.reshape(force, [-1, nall * 3]),
            "virial": tf.reshape(virial, [-1, 9]),
            "atom_energy": atom_energy,
            "atom_virial": tf.reshape(atom_virial, [-1, nall * 9]),
            "descriptor": descriptor,
            "rmat": rmat,
            "rmat_deriv": rmat_deriv,
            "rij": rij,
            "nlist": nlist,
        }
        if tebd is not None:
            out["type_embedding"] = tebd
        return out

    def get_config(self):
        return {"name": self.name, "settings": self.settings,
                "mixed_precision": self.mixed_precision}
