"""The energy model: type embedding (optional) -> se_e2_a descriptor -> energy fitting, with
forces and virials from the environment-matrix derivatives.

Forces follow DeePMD-kit: g = d(sum of atomic energies)/d(rmat) by a gradient tape inside `call`,
then ProdForceSeA(g, rmat_deriv, nlist) and ProdVirialSeA(g, rmat_deriv, rij, nlist). Both ops have
registered gradients with respect to g, so a loss on forces or virials is differentiable with
respect to the weights (second derivatives through the tape).

`EnergyModel.from_config_dict(model_cfg)` is the one place where the input script's `model`
section is read for the model.
"""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from ..op import op_module
from ..precision import ENERGY_DTYPE
from .descriptor import DescriptorSeA
from .fitting import EnergyFitting
from .type_embedding import TypeEmbedding

__all__ = ["EnergyModel"]

_DESCRIPTOR_KEYS = ("sel", "rcut", "rcut_smth", "neuron", "axis_neuron", "activation_function",
                    "resnet_dt", "type_one_side", "precision", "trainable", "seed",
                    "exclude_types", "set_davg_zero")
_FITTING_KEYS = ("neuron", "resnet_dt", "activation_function", "precision", "trainable", "seed",
                 "numb_fparam", "numb_aparam", "atom_ener")
_TYPE_EMBEDDING_KEYS = ("neuron", "activation_function", "resnet_dt", "precision", "trainable",
                        "seed")


def _pick(section: dict, keys) -> dict:
    return {k: section[k] for k in keys if k in section}


class EnergyModel(keras.layers.Layer):
    """Energy model of the input script's `model` section.

    type_map: type names (ntypes = len(type_map)); descriptor, fitting_net, type_embedding: the
    normalised `descriptor` (se_e2_a), `fitting_net` (ener) and optional `type_embedding`
    sections (its presence enables the type-embedding approach).

    call(coord [nf, nall*3], atype [nf, nall] int32, natoms [2+ntypes] int32, box [nf, 9],
    mesh int32, fparam [nf, numb_fparam] = None, aparam [nf, nloc*numb_aparam] = None) -> dict:
        energy [nf], force [nf, nall*3], virial [nf, 9], atom_energy [nf, nloc],
        atom_virial [nf, nall*9] (all float64), descriptor [nf, nloc, M1*M2], rmat
        [nf, nloc*ndescrpt], rmat_deriv, rij, nlist (ProdEnvMatA's outputs), and with type
        embedding type_embedding [ntypes, te].
    Local atoms must be sorted by type; natoms = [nloc, nall, count of each type].
    """

    def __init__(self, type_map: Sequence[str], descriptor: dict, fitting_net: dict,
                 type_embedding: Optional[dict] = None, name: str = "energy_model", **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=ENERGY_DTYPE.name, **kwargs)
        self.type_map = [str(t) for t in type_map]
        self.ntypes = len(self.type_map)
        self.descriptor_config = dict(descriptor)
        self.fitting_config = dict(fitting_net)
        self.type_embedding_config = None if type_embedding is None else dict(type_embedding)

        kind = self.descriptor_config.get("type", "se_e2_a")
        if kind not in ("se_e2_a", "se_a"):
            raise ValueError(f"descriptor type {kind!r} is not supported; only se_e2_a")
        ftype = self.fitting_config.get("type", "ener")
        if ftype != "ener":
            raise ValueError(f"fitting_net type {ftype!r} is not supported; only ener")
        if self.fitting_config.get("use_aparam_as_mask", False):
            raise ValueError("fitting_net use_aparam_as_mask is not supported")
        if self.fitting_config.get("layer_name") is not None:
            raise ValueError("fitting_net layer_name (shared fitting layers) is not supported")
        sel = self.descriptor_config.get("sel")
        if not isinstance(sel, (list, tuple)):
            raise ValueError(f"descriptor sel must be a list of {self.ntypes} integers (resolve "
                             f"'auto' from the neighbour statistics first); got {sel!r}")
        if len(sel) != self.ntypes:
            raise ValueError(f"descriptor sel has {len(sel)} entries, but type_map names "
                             f"{self.ntypes} types")

        if self.type_embedding_config is not None:
            self.type_embedding = TypeEmbedding(
                self.ntypes, **_pick(self.type_embedding_config, _TYPE_EMBEDDING_KEYS),
                name="type_embedding")
            tebd_dim = self.type_embedding.dim_out
        else:
            self.type_embedding = None
            tebd_dim = 0
        self.descriptor = DescriptorSeA(**_pick(self.descriptor_config, _DESCRIPTOR_KEYS),
                                        tebd_dim=tebd_dim, name="descriptor")
        self.fitting = EnergyFitting(self.ntypes, self.descriptor.dim_out,
                                     **_pick(self.fitting_config, _FITTING_KEYS),
                                     tebd_dim=tebd_dim, name="fitting")

    @classmethod
    def from_config_dict(cls, model_cfg: dict) -> "EnergyModel":
        """The model of a normalised `model` section (DeePMD-kit input script)."""
        if "type_map" not in model_cfg or model_cfg["type_map"] is None:
            raise ValueError("model.type_map is required")
        return cls(model_cfg["type_map"], model_cfg["descriptor"], model_cfg["fitting_net"],
                   model_cfg.get("type_embedding"))

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape=None):
        if self.type_embedding is not None:
            self.type_embedding.build()
        self.descriptor.build()
        self.fitting.build()

    def set_statistics(self, davg, dstd, bias_atom_e, fparam_avg=None, fparam_istd=None,
                       aparam_avg=None, aparam_istd=None) -> None:
        """Assigns the non-trainable statistics: davg, dstd [ntypes, ndescrpt] (or per component
        [ntypes, 4]), bias_atom_e [ntypes], fparam/aparam avg and inverse std."""
        if not self.built:
            self.build()
        self.descriptor.set_statistics(davg, dstd)
        self.fitting.set_statistics(bias_atom_e, fparam_avg, fparam_istd, aparam_avg,
                                    aparam_istd)

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

    def call(self, coord, atype, natoms, box, mesh, fparam=None, aparam=None):
        natoms = tf.cast(natoms, tf.int32)
        nall = natoms[1]
        coord = tf.reshape(tf.cast(coord, ENERGY_DTYPE), [-1, nall * 3])
        atype = tf.reshape(tf.cast(atype, tf.int32), [-1, nall])
        box = tf.reshape(tf.cast(box, ENERGY_DTYPE), [-1, 9])
        tebd = self.type_embedding.table() if self.type_embedding is not None else None

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
        return {
            "name": self.name,
            "type_map": list(self.type_map),
            "descriptor": dict(self.descriptor_config),
            "fitting_net": dict(self.fitting_config),
            "type_embedding": None if self.type_embedding_config is None else dict(
                self.type_embedding_config),
        }
