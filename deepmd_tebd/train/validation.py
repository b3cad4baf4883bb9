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

from ..learning_rate import loss_prefactor
from .step import batch_signature

log = logging.getLogger("deepmd_tebd")

FIGURES = ["rmse_e", "rmse_f", "rmse_v", "loss", "loss_final"]
LABELS = ["energy", "force", "virial"]
# per chunk: (sum name, label whose find flag counts it, values per frame: "1", "3N", "9", "N")
SUMS = {"e_atom": ("energy", "1"), "e": ("energy", "1"), "f": ("force", "3N"),
        "f_loss": ("force", "3N"), "v_atom": ("virial", "9"), "v": ("virial", "9"),
        "ae": ("atom_ener", "N"), "pf": ("atom_pref", "3N")}


def whole_chunks(data, labels: list[str], batch_atoms: int) -> list[dict]:
    """Every frame of every set of a DataSystem's systems once, as batches (the training batch
    layout) of at most max(1, batch_atoms // natoms) frames; missing labels are zeros with find
    0."""
    chunks = []
    for system in data.systems:
        nat = system.natoms
        per_chunk = max(1, batch_atoms // nat)
        natoms_vec = system.natoms_vec(data.ntypes)
        mesh = np.zeros(6 if system.pbc else 0, dtype=np.int32)
        for set_dir in system.sets:
            frames = system.load_set(set_dir)
            nf = frames["coord"].shape[0]
            values, found = system.load_labels_or_zeros(set_dir, labels, nf)
            values.update({f"find_{key}": np.float64(found[key]) for key in labels})
            values["energy"] = values["energy"].reshape(nf)
            for start in range(0, nf, per_chunk):
                part = slice(start, min(nf, start + per_chunk))
                count = part.stop - start
                chunk = {"coord": frames["coord"][part], "box": frames["box"][part],
                         "type": np.tile(system.atype, (count, 1)), "natoms_vec": natoms_vec,
                         "default_mesh": mesh}
                chunk.update({k: (v if k.startswith("find_") else v[part])
                              for k, v in values.items()})
                chunks.append(chunk)
    return chunks


def make_whole_evaluation(model, relative_f: float | None, labels: list[str]):
    """A traced function: the sums of squared errors (SUMS) of one chunk."""

    @tf.function(input_signature=[batch_signature(labels)])
    def sums(batch):
        pred = model(batch["coord"], batch["type"], batch["natoms_vec"], batch["box"],
                     batch["default_mesh"])
        n = tf.cast(batch["natoms_vec"][0], tf.float64)
        de = tf.reshape(pred["energy"], [-1]) - batch["energy"]
        df = tf.reshape(pred["force"] - batch["force"], [-1, 3])
        rel = df
        if relative_f is not None:
            norm = tf.norm(tf.reshape(batch["force"], [-1, 3]), axis=1, keepdims=True)
            rel = df / (norm + relative_f)
        dv = tf.reshape(pred["virial"], [-1, 9]) - batch["virial"]
        out = {"e_atom": tf.reduce_sum(tf.square(de / n)), "e": tf.reduce_sum(tf.square(de)) / n,
               "f": tf.reduce_sum(tf.square(df)), "f_loss": tf.reduce_sum(tf.square(rel)),
               "v_atom": tf.reduce_sum(tf.square(dv / n)), "v": tf.reduce_sum(tf.square(dv)) / n}
        if "atom_ener" in labels:
            dae = tf.reshape(pred["atom_energy"], [-1]) - tf.reshape(batch["atom_ener"], [-1])
            out["ae"] = tf.reduce_sum(tf.square(dae))
        if "atom_pref" in labels:
            weight = tf.repeat(tf.reshape(batch["atom_pref"], [-1, 1]), 3, axis=1)
            out["pf"] = tf.reduce_sum(weight * tf.square(rel))
        return {k: v * batch[f"find_{SUMS[k][0]}"] for k, v in out.items()}

    return sums


def _per_frame(kind: str, natoms: int) -> int:
    return {"1": 1, "3N": 3 * natoms, "9": 9, "N": natoms}[kind]


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
        self.chunks = whole_chunks(valid_data, self.labels, settings.batch_atoms)
        self.nframes = sum(c["coord"].shape[0] for c in self.chunks)
        self.sums = make_whole_evaluation(model, loss.relative_f, self.labels)

    def _totals(self) -> tuple[dict, dict]:
        totals = {k: 0.0 for k in SUMS}
        counts = {k: 0.0 for k in SUMS}
        for chunk in self.chunks:
            nf, nat = chunk["coord"].shape[0], int(chunk["natoms_vec"][0])
            for name, value in self.sums(chunk).items():
                totals[name] += float(value)
            for name, (label, kind) in SUMS.items():
                if f"find_{label}" in chunk:
                    counts[name] += chunk[f"find_{label}"] * nf * _per_frame(kind, nat)
        return totals, counts

    def _loss(self, means: dict, lr: float) -> float:
        terms = {"e": "e", "f": "f_loss", "v": "v", "ae": "ae", "pf": "pf"}
        value = 0.0
        for term in self.loss.active:
            start, limit = self.loss.prefactors[term]
            value += loss_prefactor(lr, self.loss.start_lr, start, limit) * means[terms[term]]
        return float(value)

    def figures(self, step: int) -> dict:
        """FIGURES of the current weights on every validation frame (nan: no frame has the
        label); `step` sets the current prefactors."""
        totals, counts = self._totals()
        means = {k: totals[k] / counts[k] if counts[k] else 0.0 for k in SUMS}
        out = {name: float(np.sqrt(totals[key] / counts[key])) if counts[key] else float("nan")
               for name, key in (("rmse_e", "e_atom"), ("rmse_f", "f"), ("rmse_v", "v_atom"))}
        out.update(loss=self._loss(means, float(self.lr.value(step))),
                   loss_final=self._loss(means, float(self.lr.value(self.final_step))))
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
        return {"whole_validation": self.tracker}

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
