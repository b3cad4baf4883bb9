"""The `ener` loss of DeePMD-kit: energy, force, virial, atomic-energy and atom-prefactor force
terms, each weighted by a prefactor that moves from start to limit as the learning rate decays.

With N atoms per frame and find_X = 1 when the batch's set holds label X:

    L = p_e mean(dE^2) / N + p_f mean(dF^2) + p_v mean(dV^2) / N + p_ae mean(de^2)
        + p_pf mean(w dF^2),       p_X = find_X (limit_X + (start_X - limit_X) lr / start_lr)

A term is active when its start or limit prefactor is not zero. The reported errors are
rmse = sqrt(L), rmse_e = sqrt(mean dE^2) / N, rmse_ae, rmse_f, rmse_v = sqrt(mean dV^2) / N, rmse_pf.

The pieces serve the loss of a batch (EnergyLoss.__call__) and the figures of a whole validation
set (train/validation.py), whose frames come from systems of different N:
  squared_errors          each active term's squared errors (relative_f, atom_pref weights)
  per_atom                the division by N of the per-atom terms (e, v)
  EnergyLoss.combine      prefactors times term means, summed in SUM_ORDER
  dp_test_squared_errors  dp test's figures (DP_TEST_FIGURES): (dE/N)^2, dF^2, (dV/N)^2
"""
from __future__ import annotations

import tensorflow as tf

from .config.objects import LOSS_TERMS as TERMS
from .config.objects import LossConfig
from .learning_rate import loss_prefactor

LABEL = dict(TERMS)  # term -> the label it fits, whose find_ flag switches it off
SUM_ORDER = ("e", "ae", "f", "pf", "v")  # the order the terms are added into the loss
PER_ATOM = ("e", "v")  # the terms divided by the number of atoms
PREDICTION = {"atom_ener": "atom_energy"}  # the model's output of a label, where names differ
# dp test's figures: name -> (label, the difference divided by N before it is squared)
DP_TEST_FIGURES = {"rmse_e": ("energy", True), "rmse_f": ("force", False),
                "rmse_v": ("virial", True)}


def difference(pred: dict, label: dict, key: str):
    """Prediction minus label of the label `key`."""
    return pred[PREDICTION.get(key, key)] - label[key]


def per_atom(term: str, value, natoms, exponent: int = 1):
    """`value` divided by natoms (natoms^2 with exponent 2, intensive_ener_virial) for the terms
    normalised per atom (PER_ATOM), else `value`."""
    if term not in PER_ATOM:
        return value
    return value / natoms if exponent == 1 else value / natoms ** exponent


def huber(residual, delta: float):
    """The Huber loss of each residual: r^2 / 2 within delta, delta (|r| - delta / 2) beyond."""
    size = tf.abs(residual)
    return tf.where(size <= delta, 0.5 * tf.square(residual), delta * (size - 0.5 * delta))


def squared_errors(terms, pred: dict, label: dict, relative_f: float | None) -> dict:
    """{term: squared errors} of one batch for the terms `terms`: force differences divided by
    (|F| + relative_f) when relative_f is given, and weighted by each atom's atom_pref for pf."""
    squares = {}
    if "e" in terms:
        squares["e"] = tf.square(difference(pred, label, "energy"))
    if "ae" in terms:
        squares["ae"] = tf.square(difference(pred, label, "atom_ener"))
    if "f" in terms or "pf" in terms:
        diff = tf.reshape(difference(pred, label, "force"), [-1, 3])
        if relative_f is not None:
            norm = tf.norm(tf.reshape(label["force"], [-1, 3]), axis=1, keepdims=True)
            diff = diff / (norm + relative_f)
        if "f" in terms:
            squares["f"] = tf.square(diff)
        if "pf" in terms:
            weight = tf.repeat(tf.reshape(label["atom_pref"], [-1, 1]), 3, axis=1)
            squares["pf"] = weight * tf.square(diff)
    if "v" in terms:
        squares["v"] = tf.square(difference(pred, label, "virial"))
    return squares


def dp_test_squared_errors(pred: dict, label: dict, natoms) -> dict:
    """{figure: squared errors} of DP_TEST_FIGURES for one batch of `natoms` atoms per frame."""
    squares = {}
    for name, (key, divided) in DP_TEST_FIGURES.items():
        diff = difference(pred, label, key)
        squares[name] = tf.square(diff / natoms if divided else diff)
    return squares


class EnergyLoss:
    """Loss and reported errors of one batch; settings: the `loss` section (config/objects.py)."""

    def __init__(self, settings: LossConfig, start_lr: float):
        self.start_lr = float(start_lr)
        self.prefactors = dict(settings.prefactors)
        self.active = [t for t, _ in TERMS if any(self.prefactors[t])]
        self.relative_f = settings.relative_f
        self.use_huber = settings.use_huber
        delta_e, delta_f, delta_v = settings.huber_delta  # atomic energies take energy's
        self.huber_delta = {"e": delta_e, "f": delta_f, "v": delta_v, "ae": delta_e}
        self.norm_exp = 2 if settings.intensive_ener_virial else 1

    def huber_values(self, pred: dict, label: dict, natoms) -> dict:
        """{term: Huber loss of each residual} (use_huber): energy and virial residuals per atom,
        forces and atomic energies as they are (pf and relative_f are refused with it)."""
        values = {}
        for term in self.active:  # a label of an inactive term is not in the batch
            residual = difference(pred, label, LABEL[term])
            values[term] = huber(per_atom(term, residual, natoms), self.huber_delta[term])
        return values

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

    def prefactor(self, term: str, lr, flags: dict | None = None):
        """p_term at learning rate lr, times the find_ flag of the term's label in `flags` (a
        batch) when given."""
        start, limit = self.prefactors[term]
        pref = loss_prefactor(lr, self.start_lr, start, limit)
        return pref if flags is None else flags[f"find_{LABEL[term]}"] * pref

    def combine(self, lr, means: dict, flags: dict | None = None, natoms=None):
        """The loss of {term: mean squared error}: p_term * mean summed in SUM_ORDER (float64).

        The means of a batch come with its find_ flags and natoms (the per-atom terms' weighted
        means are divided by it). Whole-set means over systems of different N are per atom
        already (natoms None), and a label no frame holds leaves its term's mean 0 (no flags)."""
        loss = tf.constant(0.0, tf.float64)
        for term in SUM_ORDER:
            if term in means:
                weighted = self.prefactor(term, lr, flags) * means[term]
                loss += weighted if natoms is None else per_atom(term, weighted, natoms,
                                                                   self.norm_exp)
        return loss

    def __call__(self, lr, pred: dict, label: dict, natoms):
        """(loss, {error name: value}) for predictions and labels of one batch (float64)."""
        n = tf.cast(natoms[0], tf.float64)
        lr = tf.cast(lr, tf.float64)
        squares = squared_errors(self.active, pred, label, self.relative_f)
        means = {term: tf.reduce_mean(square) for term, square in squares.items()}
        if self.use_huber:  # normalised per atom already
            loss = self.combine(lr, {t: tf.reduce_mean(h) for t, h in
                                     self.huber_values(pred, label, n).items()}, label)
        else:
            loss = self.combine(lr, means, label, n)
        errors = {f"rmse_{term}": per_atom(term, tf.sqrt(l2), n) for term, l2 in means.items()}
        errors["rmse"] = tf.sqrt(loss)
        return loss, {name: errors[name] for name in self.error_names}
