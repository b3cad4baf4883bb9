"""The `ener` loss of DeePMD-kit: energy, force, virial, atomic-energy and atom-prefactor force
terms, each weighted by a prefactor that moves from start to limit as the learning rate decays.

With N atoms per frame and find_X = 1 when the batch's set holds label X:

    L = p_e mean(dE^2) / N + p_f mean(dF^2) + p_v mean(dV^2) / N + p_ae mean(de^2)
        + p_pf mean(w dF^2),       p_X = find_X (limit_X + (start_X - limit_X) lr / start_lr)

A term is active when its start or limit prefactor is not zero. The reported errors are
rmse = sqrt(L), rmse_e = sqrt(mean dE^2) / N, rmse_ae, rmse_f, rmse_v = sqrt(mean dV^2) / N, rmse_pf.
"""
from __future__ import annotations

import tensorflow as tf

from .config.objects import LOSS_TERMS as TERMS
from .config.objects import LossConfig
from .learning_rate import loss_prefactor


class EnergyLoss:
    """Loss and reported errors of one batch; settings: the `loss` section (config/objects.py)."""

    def __init__(self, settings: LossConfig, start_lr: float):
        self.start_lr = float(start_lr)
        self.prefactors = dict(settings.prefactors)
        self.active = [t for t, _ in TERMS if any(self.prefactors[t])]
        self.relative_f = settings.relative_f

    @property
    def labels(self) -> list[str]:
        """Label keys the active terms need (force also for atom_pref)."""
        need = {key for t, key in TERMS if t in self.active}
        if "atom_pref" in need:
            need.add("force")
        return sorted(need)

    @property
    def error_names(self) -> list[str]:
        """The lcurve columns, in DeePMD-kit's order."""
        return ["rmse"] + [f"rmse_{t}" for t, _ in TERMS if t in self.active]

    def __call__(self, lr, pred: dict, label: dict, natoms):
        """(loss, {error name: value}) for predictions and labels of one batch (float64)."""
        n = tf.cast(natoms[0], tf.float64)
        lr = tf.cast(lr, tf.float64)
        loss = tf.constant(0.0, tf.float64)
        errors = {}

        def pref(term, key):
            start, limit = self.prefactors[term]
            return label[f"find_{key}"] * loss_prefactor(lr, self.start_lr, start, limit)

        if "e" in self.active:
            l2 = tf.reduce_mean(tf.square(pred["energy"] - label["energy"]))
            loss += pref("e", "energy") * l2 / n
            errors["rmse_e"] = tf.sqrt(l2) / n
        if "ae" in self.active:
            l2 = tf.reduce_mean(tf.square(pred["atom_energy"] - label["atom_ener"]))
            loss += pref("ae", "atom_ener") * l2
            errors["rmse_ae"] = tf.sqrt(l2)
        if "f" in self.active or "pf" in self.active:
            diff = tf.reshape(pred["force"] - label["force"], [-1, 3])
            if self.relative_f is not None:
                norm = tf.norm(tf.reshape(label["force"], [-1, 3]), axis=1, keepdims=True)
                diff = diff / (norm + self.relative_f)
            if "f" in self.active:
                l2 = tf.reduce_mean(tf.square(diff))
                loss += pref("f", "force") * l2
                errors["rmse_f"] = tf.sqrt(l2)
            if "pf" in self.active:
                weight = tf.repeat(tf.reshape(label["atom_pref"], [-1, 1]), 3, axis=1)
                l2 = tf.reduce_mean(weight * tf.square(diff))
                loss += pref("pf", "atom_pref") * l2
                errors["rmse_pf"] = tf.sqrt(l2)
        if "v" in self.active:
            l2 = tf.reduce_mean(tf.square(pred["virial"] - label["virial"]))
            loss += pref("v", "virial") * l2 / n
            errors["rmse_v"] = tf.sqrt(l2) / n
        errors["rmse"] = tf.sqrt(loss)
        return loss, {name: errors[name] for name in self.error_names}
