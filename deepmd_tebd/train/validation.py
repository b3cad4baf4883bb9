"""Whole-validation evaluation (`training/whole_validation`): every frame of every set of the
validation systems, evaluated in one traced function on chunks of at most `batch_atoms` atoms,
at each checkpoint (and every `freq` steps). DeePMD-kit's lcurve shows numb_btch random batches
per display; these figures are the model's errors on the whole validation set.

Figures (labels missing from a set leave its frames out of that figure):
  rmse_e   sqrt(mean over frames (dE/N)^2)        = dp test's "Energy RMSE/Natoms"
  rmse_f   sqrt(mean over components dF^2)        = dp test's "Force RMSE"
  rmse_v   sqrt(mean over frames, 9 comps (dV/N)^2) = dp test's "Virial RMSE/Natoms"
  loss, loss_final   the loss (loss.py) with the whole-set means in place of the batch means,
           at the prefactors of the current and of the final learning rate
Rows go to `file` ("%7d" step, then "%18.10e" columns, then the learning rate), to TensorBoard
(whole_validation/<name>) and to the log.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf

from ..data.batch import whole_set_batches
from ..loss import DP_TEST_FIGURES, LABEL, dp_test_squared_errors, per_atom, squared_errors
from ..store.keys import CKPT_WHOLE_VALIDATION
from .step import batch_signature

log = logging.getLogger("deepmd_tebd")

FIGURES = ["rmse_e", "rmse_f", "rmse_v", "loss", "loss_final"]
LABELS = ["energy", "force", "virial"]


def make_whole_evaluation(model, loss, labels: list[str]):
    """A traced function: {name: (sum, count)} of one chunk's squared errors of the active loss
    terms (per_atom terms divided by the chunk's N) and of the dp test figures; both times the
    find_ flag of the name's label, so frames without it count for nothing."""

    @tf.function(input_signature=[batch_signature(labels)], autograph=False)
    def sums(batch):
        pred = model(batch["coord"], batch["type"], batch["natoms_vec"], batch["box"],
                     batch["default_mesh"])
        n = tf.cast(batch["natoms_vec"][0], tf.float64)

        def counted(total, square, key):
            found = batch[f"find_{key}"]
            return total * found, tf.cast(tf.size(square), tf.float64) * found

        if loss.use_huber:  # the loss's own values, normalised per atom already
            out = {term: counted(tf.reduce_sum(value), value, LABEL[term])
                   for term, value in loss.huber_values(pred, batch, n).items()}
        else:
            terms = squared_errors(loss.active, pred, batch, loss.relative_f)
            out = {term: counted(per_atom(term, tf.reduce_sum(square), n, loss.norm_exp),
                                 square, LABEL[term]) for term, square in terms.items()}
        out.update({name: counted(tf.reduce_sum(square), square, DP_TEST_FIGURES[name][0])
                    for name, square in dp_test_squared_errors(pred, batch, n).items()})
        return out

    return sums


class WholeValidation:
    """The whole-validation figures of the model now (`figures(step)`), written by `record`.

    settings: WholeValidationConfig; loss: EnergyLoss; lr: the schedule; valid_data: the
    validation DataSystem; final_step: numb_steps (the step of the final prefactors)."""

    def __init__(self, settings, model, loss, lr, valid_data, final_step: int):
        self.settings = settings
        self.loss = loss
        self.lr = lr
        self.final_step = final_step
        self.labels = LABELS + [k for t, k in (("ae", "atom_ener"), ("pf", "atom_pref"))
                                if t in loss.active]
        self.chunks = whole_set_batches(valid_data, self.labels, settings.batch_atoms)
        self.nframes = sum(c["coord"].shape[0] for c in self.chunks)
        self.sums = make_whole_evaluation(model, loss, self.labels)

    def _totals(self) -> tuple[dict, dict]:
        """{name: sum over the chunks} of make_whole_evaluation's sums and of its counts."""
        totals, counts = {}, {}
        for chunk in self.chunks:
            for name, (total, count) in self.sums(chunk).items():
                totals[name] = totals.get(name, 0.0) + float(total)
                counts[name] = counts.get(name, 0.0) + float(count)
        return totals, counts

    def figures(self, step: int) -> dict:
        """FIGURES of the current weights on every validation frame (nan: no frame has the
        label); `step` sets the current prefactors."""
        totals, counts = self._totals()
        means = {t: totals[t] / counts[t] if counts[t] else 0.0 for t in self.loss.active}
        out = {name: float(np.sqrt(totals[name] / counts[name])) if counts[name] else float("nan")
               for name in DP_TEST_FIGURES}
        for name, at in (("loss", step), ("loss_final", self.final_step)):
            out[name] = float(self.loss.combine(float(self.lr.value(at)), means))
        return out


class ValidationCurve:
    """The whole-validation file: truncated at the start, appended to (new header) on restart."""

    def __init__(self, path: str, restart: bool):
        self.file = open(path, "a" if restart else "w")
        self.file.write("# %5s" % "step" + "".join("   %18s" % n for n in FIGURES)
                        + "   %8s\n" % "lr")
        self.file.flush()

    def write(self, step: int, figures: dict, lr: float) -> None:
        """Appends the row of `step` and flushes it."""
        self.file.write("%7d" % step + "".join("   %18.10e" % figures[n] for n in FIGURES)
                        + "   %8.1e\n" % lr)
        self.file.flush()

    def close(self) -> None:
        """Closes the file."""
        self.file.close()


def log_figures(step: int, figures: dict, nframes: int, seconds: float) -> None:
    """The log line of one whole-validation evaluation."""
    log.info("whole validation at step %d (%d frames, %.2f s): rmse_e %.3e, rmse_f %.3e, "
             "rmse_v %.3e, loss %.3e, loss_final %.3e", step, nframes, seconds,
             *(figures[n] for n in FIGURES))


def write_summary(writer, step: int, figures: dict) -> None:
    """The figures as TensorBoard scalars whole_validation/<name>."""
    with writer.as_default():
        for name in FIGURES:
            tf.summary.scalar(f"whole_validation/{name}", figures[name], step=step)
    writer.flush()


class WholeValidationRun:
    """What the trainer calls: `trackables` for its checkpoints, `open`/`close` around the loop,
    `due(step)` for the every-freq evaluations and `evaluate(step, checkpoint)` -> whether to
    stop (early stopping)."""

    def __init__(self, settings, training, model, loss, lr, valid_data, summary=None):
        from .best_model import ValidationTracker

        self.settings = settings
        self.save_ckpt = training.save_ckpt
        self.evaluator = WholeValidation(settings, model, loss, lr, valid_data,
                                         training.numb_steps)
        self.lr = lr
        self.tracker = ValidationTracker(settings)
        self.summary = summary
        self.curve = None
        self.last_step = None

    def trackables(self) -> dict:
        """The objects its state lives in, for the checkpoints."""
        return {CKPT_WHOLE_VALIDATION: self.tracker}

    def open(self, restarted: bool) -> None:
        """Opens the curve file (appended to on restart)."""
        self.curve = ValidationCurve(self.settings.file, restarted)

    def close(self) -> None:
        """Closes the curve file."""
        if self.curve is not None:
            self.curve.close()

    def due(self, step: int) -> bool:
        """Whether `step` is one of the every-freq evaluations."""
        return self.settings.freq > 0 and step % self.settings.freq == 0

    def evaluate(self, step: int, checkpoint) -> bool:
        """Evaluates (once per step), records, keeps the best model; True: stop training."""
        from .best_model import save_best

        if self.last_step == step:
            return False
        self.last_step = step
        start = time.perf_counter()
        figures = self.evaluator.figures(step)
        self.curve.write(step, figures, float(self.lr.value(step)))
        log_figures(step, figures, self.evaluator.nframes, time.perf_counter() - start)
        if self.summary is not None:
            write_summary(self.summary, step, figures)
        new_best, stop = self.tracker.update(step, figures)
        if new_best and self.settings.save_best:
            save_best(checkpoint, self.save_ckpt, step, figures["loss_final"])
        return stop
