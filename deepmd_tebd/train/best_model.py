"""The best model and early stopping from the whole-validation figures (validation.py).

The best model: the checkpoint with the lowest loss_final so far, written as its own prefix
`<save_ckpt>-best` (outside the numbered checkpoints that max_ckpt_keep rotates; `dp freeze
--best` freezes it). Early stopping (`whole_validation/early_stopping`): an evaluation improves
when its metric is below the best so far by more than min_delta; after `patience` evaluations
without improvement training stops with a checkpoint. The state of both lives in checkpointed
variables, so that --restart continues the count.
"""
from __future__ import annotations

import logging
import math

import tensorflow as tf

log = logging.getLogger("deepmd_tebd")

BEST_SUFFIX = "-best"


def best_prefix(save_ckpt: str) -> str:
    """The prefix of the best model's checkpoint."""
    return str(save_ckpt) + BEST_SUFFIX


class ValidationTracker(tf.Module):
    """Best loss_final and its step; the early-stopping best, its step and the evaluations
    since (checkpointed variables)."""

    def __init__(self, settings):
        super().__init__(name="whole_validation")
        self.settings = settings
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")
        self.stop_best = tf.Variable(math.inf, dtype=tf.float64, trainable=False,
                                     name="stop_best")
        self.waited = tf.Variable(0, dtype=tf.int64, trainable=False, name="waited")

    def update(self, step: int, figures: dict) -> tuple[bool, bool]:
        """(a new best model, stop now) after the evaluation of `step`."""
        new_best = figures["loss_final"] < float(self.best)
        if new_best:
            self.best.assign(figures["loss_final"])
            self.best_step.assign(step)
        stopping = self.settings.early_stopping
        if stopping is None:
            return new_best, False
        value = figures[stopping.metric]
        if value < float(self.stop_best) - stopping.min_delta:
            self.stop_best.assign(value)
            self.waited.assign(0)
        else:
            self.waited.assign_add(1)
        stop = int(self.waited) >= stopping.patience
        if stop:
            log.info("early stopping at step %d: %s has not improved by more than %g for %d "
                     "evaluations (best %.6e)", step, stopping.metric, stopping.min_delta,
                     int(self.waited), float(self.stop_best))
        return new_best, stop


def save_best(checkpoint: tf.train.Checkpoint, save_ckpt: str, step: int, value: float) -> str:
    """Writes the best model's checkpoint (replacing the previous best)."""
    path = checkpoint.write(best_prefix(save_ckpt))
    log.info("saved the best model (loss_final %.6e at step %d) to %s", value, step, path)
    return path
