"""The energy fitting net: atomic energies from the descriptor.

Per local atom i the net input is [D_i, tebd[type_i] (with type embedding), (fparam - avg) istd,
(aparam_i - avg) istd]; hidden layers follow the fitting resnet rule (network.py), then a final
linear layer of width 1. With type embedding ONE net serves every type; without, one net per type
runs on that type's contiguous block of atoms. Then

    E_i = (e_i + bias_atom_e[type_i]) [type_i >= 0],

with bias_atom_e a non-trainable variable (from the energy statistics) added after the net.

atom_ener (energies of isolated atoms): the net evaluated at a zero descriptor (type embedding,
fparam, aparam kept) is subtracted, so that an atom without neighbours has energy bias_atom_e,
which is set to the given value. Without type embedding this applies to the types with a value;
with type embedding to every atom as soon as atom_ener is non-empty (DeePMD-kit's behaviour).
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from ..config.objects import FittingConfig, MixedPrecisionConfig
from ..precision import ENERGY_DTYPE, dtype_of
from .network import MLP

__all__ = ["EnergyFitting"]

# statistics (bias, fparam/aparam normalisation) are kept in the interface precision
_INTERFACE_DTYPE = dtype_of("default")


class EnergyFitting(keras.layers.Layer):
    """Energy fitting layer.

    settings: the `fitting_net` section (trainable: a bool or len(neuron)+1 bools); ntypes:
    number of types; dim_descrpt: width of the descriptor (M1*M2); tebd_dim: width of the type
    embedding (0: one net per type).

    Non-trainable variables: bias_atom_e [ntypes] (`fitting_attr/t_bias_atom_e`), and with
    numb_fparam / numb_aparam > 0 fparam_avg, fparam_istd / aparam_avg, aparam_istd.

    call(descriptor [nf, nloc, dim_descrpt], atype [nf, nall] int, natoms [2+ntypes],
    type_embedding [ntypes, te] or None, fparam [nf, numb_fparam] or None,
    aparam [nf, nloc*numb_aparam] or None) -> atomic energies [nf, nloc] (float64).
    """

    def __init__(self, settings: FittingConfig, ntypes: int, dim_descrpt: int,
                 tebd_dim: int = 0, name: str = "fitting",
                 mixed_precision: Optional[MixedPrecisionConfig] = None, **kwargs):
        kwargs.pop("dtype", None)
        trainable = settings.trainable
        layer_trainable = trainable if isinstance(trainable, tuple) else (trainable,)
        # mixed precision: DeePMD-kit's EnerFitting.enable_mixed_precision sets
        # fitting_precision to output_prec; one_layer computes the hidden layers in compute_prec
        precision = settings.precision if mixed_precision is None else mixed_precision.output_prec
        compute = None if mixed_precision is None else mixed_precision.compute_prec
        self.mixed_precision = mixed_precision
        super().__init__(name=name, dtype=dtype_of(precision).name,
                         trainable=any(layer_trainable), **kwargs)
        self.settings = settings
        self.ntypes = int(ntypes)
        self.dim_descrpt = int(dim_descrpt)
        self.numb_fparam = settings.numb_fparam
        self.numb_aparam = settings.numb_aparam
        self.atom_ener = settings.atom_ener
        self.tebd_dim = int(tebd_dim)

        nets_count = 1 if self.tebd_dim > 0 else self.ntypes
        # the seed runs on across the per-type nets: 3 per layer, final layer included
        shift = 3 * (len(settings.neuron) + 1)
        self._net_names: list[str] = []
        for t in range(nets_count):
            suffix = "" if self.tebd_dim > 0 else f"_type_{t}"
            name_t = "fitting_net" + suffix
            mlp = MLP(settings.neuron, activation=settings.activation_function,
                      resnet_dt=settings.resnet_dt, precision=precision,
                      compute_precision=compute,
                      trainable=list(trainable) if isinstance(trainable, tuple) else trainable,
                      seed=None if settings.seed is None else int(settings.seed) + shift * t,
                      kind="fitting", final_width=1, suffix=suffix, name=name_t)
            setattr(self, name_t, mlp)
            self._net_names.append(name_t)

    @property
    def input_width(self) -> int:
        """Width of the net input: descriptor, type embedding, fparam, aparam."""
        return self.dim_descrpt + self.tebd_dim + self.numb_fparam + self.numb_aparam

    def nets(self) -> list[MLP]:
        """The fitting nets: one with type embedding, else one per type."""
        return [getattr(self, name) for name in self._net_names]

    # -- weights ---------------------------------------------------------------------------

    def _statistic(self, name: str, size: int, initializer: str):
        """A non-trainable statistic of the data (set before training, saved with the model)."""
        return self.add_weight(name=name, shape=(size,), initializer=initializer,
                               dtype=_INTERFACE_DTYPE, trainable=False)

    def build(self, input_shape=None):
        self.bias_atom_e = self._statistic("t_bias_atom_e", self.ntypes, "zeros")
        if self.numb_fparam > 0:
            self.fparam_avg = self._statistic("t_fparam_avg", self.numb_fparam, "zeros")
            self.fparam_istd = self._statistic("t_fparam_istd", self.numb_fparam, "ones")
        if self.numb_aparam > 0:
            self.aparam_avg = self._statistic("t_aparam_avg", self.numb_aparam, "zeros")
            self.aparam_istd = self._statistic("t_aparam_istd", self.numb_aparam, "ones")
        for mlp in self.nets():
            mlp.build((None, self.input_width))

    def set_statistics(self, bias_atom_e, fparam_avg=None, fparam_istd=None, aparam_avg=None,
                       aparam_istd=None) -> None:
        """Assigns the energy bias [ntypes] (with the atom_ener values already in it, see
        `data/stats.py`) and the fparam/aparam normalisation (avg and inverse std)."""
        if not self.built:
            self.build()
        bias = np.array(bias_atom_e, dtype=np.float64).reshape(-1)
        if bias.shape != (self.ntypes,):
            raise ValueError(f"bias_atom_e must have {self.ntypes} entries; got {bias.shape}")
        self.bias_atom_e.assign(bias)
        for kind, n, avg, istd in (("fparam", self.numb_fparam, fparam_avg, fparam_istd),
                                   ("aparam", self.numb_aparam, aparam_avg, aparam_istd)):
            for what, value in (("avg", avg), ("istd", istd)):
                if value is None:
                    continue
                if n == 0:
                    raise ValueError(f"{kind}_{what} given, but numb_{kind} is 0")
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if value.shape != (n,):
                    raise ValueError(f"{kind}_{what} must have {n} entries; got {value.shape}")
                getattr(self, f"{kind}_{what}").assign(value)

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit graph name."""
        names = {"fitting_attr/t_bias_atom_e": self.bias_atom_e}
        for kind in ("fparam", "aparam"):
            if getattr(self, f"numb_{kind}") > 0:
                names[f"fitting_attr/t_{kind}_avg"] = getattr(self, f"{kind}_avg")
                names[f"fitting_attr/t_{kind}_istd"] = getattr(self, f"{kind}_istd")
        for mlp in self.nets():
            names.update(mlp.graph_variables())
        return names

    # -- computation -----------------------------------------------------------------------

    def call(self, descriptor, atype, natoms, type_embedding=None, fparam=None, aparam=None):
        natoms = tf.cast(natoms, tf.int32)
        nloc = natoms[0]
        prec = self.compute_dtype
        descriptor = tf.reshape(tf.cast(descriptor, prec), [-1, nloc, self.dim_descrpt])
        shape = tf.shape(descriptor)
        nf = shape[0]
        atype_loc = tf.reshape(tf.cast(atype, tf.int32), [-1, natoms[1]])[:, :nloc]
        real = tf.cast(atype_loc >= 0, ENERGY_DTYPE)
        atype_loc = tf.clip_by_value(atype_loc, 0, self.ntypes - 1)

        # per-atom extra inputs after the descriptor: tebd, fparam, aparam
        extra = []
        if self.tebd_dim > 0:
            if type_embedding is None:
                raise ValueError(f"{self.name} was built for type embedding: pass the "
                                 "type_embedding table")
            extra.append(tf.gather(tf.cast(type_embedding, prec), atype_loc))
        if self.numb_fparam > 0:
            if fparam is None:
                raise ValueError(f"numb_fparam is {self.numb_fparam}: fparam is required")
            fparam = tf.reshape(tf.cast(fparam, _INTERFACE_DTYPE), [-1, self.numb_fparam])
            fparam = tf.cast((fparam - self.fparam_avg) * self.fparam_istd, prec)
            extra.append(tf.broadcast_to(fparam[:, None, :], [nf, nloc, self.numb_fparam]))
        if self.numb_aparam > 0:
            if aparam is None:
                raise ValueError(f"numb_aparam is {self.numb_aparam}: aparam is required")
            aparam = tf.reshape(tf.cast(aparam, _INTERFACE_DTYPE), [nf, nloc, self.numb_aparam])
            extra.append(tf.cast((aparam - self.aparam_avg) * self.aparam_istd, prec))

        def net_input(d):
            return tf.concat([d] + extra, axis=-1) if extra else d

        if self.tebd_dim > 0:
            atom_e = self.fitting_net(net_input(descriptor))[..., 0]  # [nf, nloc]
            if self.atom_ener:
                atom_e -= self.fitting_net(net_input(tf.zeros_like(descriptor)))[..., 0]
        else:
            blocks = []
            start = tf.constant(0, tf.int32)
            for t in range(self.ntypes):
                count = natoms[2 + t]
                sl = slice_atoms(net_input(descriptor), start, count)
                mlp = getattr(self, f"fitting_net_type_{t}")
                e_t = mlp(sl)[..., 0]
                if t < len(self.atom_ener) and self.atom_ener[t] is not None:
                    e_t -= mlp(slice_atoms(net_input(tf.zeros_like(descriptor)), start, count))[
                        ..., 0]
                blocks.append(e_t)
                start = start + count
            atom_e = tf.concat(blocks, axis=1)
        atom_e = tf.cast(atom_e, ENERGY_DTYPE)
        bias = tf.gather(tf.cast(self.bias_atom_e, ENERGY_DTYPE), atype_loc)
        return (atom_e + bias) * real

    def get_config(self):
        return {"name": self.name, "settings": self.settings, "ntypes": self.ntypes,
                "dim_descrpt": self.dim_descrpt, "tebd_dim": self.tebd_dim,
                "mixed_precision": self.mixed_precision}


def slice_atoms(x, start, count):
    """Atoms [start, start + count) of x [nf, nloc, width]."""
    return tf.slice(x, [0, start, 0], [-1, count, -1])
