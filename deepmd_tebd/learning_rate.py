"""The `exp` learning-rate schedule of DeePMD-kit 2.2 (staircase exponential decay), pure in the step.

    lr(t) = start_lr * decay_rate ** floor(t / decay_steps),
    decay_rate = exp(ln(stop_lr / start_lr) / (numb_steps / decay_steps))

so that lr reaches stop_lr at numb_steps. When decay_steps >= numb_steps it is replaced by 100
if numb_steps // 10 > 100, else by numb_steps // 100 + 1 (DeePMD-kit 2.2's rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpDecayLR:
    """The staircase exponential decay from start_lr to stop_lr over numb_steps."""

    start_lr: float
    stop_lr: float
    decay_steps: int
    numb_steps: int

    @classmethod
    def from_config(cls, settings, numb_steps: int) -> "ExpDecayLR":
        """The schedule of the `learning_rate` settings (config.objects.LearningRateConfig)."""
        decay_steps = settings.decay_steps
        if decay_steps >= numb_steps:
            decay_steps = 100 if numb_steps // 10 > 100 else numb_steps // 100 + 1
        return cls(settings.start_lr, settings.stop_lr, decay_steps, numb_steps)

    @property
    def decay_rate(self) -> float:
        """The factor applied every decay_steps steps."""
        if self.numb_steps <= 0:
            return 1.0
        return math.exp(math.log(self.stop_lr / self.start_lr) /
                        (self.numb_steps / self.decay_steps))

    def value(self, step):
        """lr at `step` (a Python int, a NumPy array or a TensorFlow tensor)."""
        if isinstance(step, int):
            return self.start_lr * self.decay_rate ** (step // self.decay_steps)
        import tensorflow as tf

        if tf.is_tensor(step) or isinstance(step, tf.Variable):
            exponent = tf.math.floordiv(tf.cast(step, tf.float64), float(self.decay_steps))
            return self.start_lr * tf.pow(tf.constant(self.decay_rate, tf.float64), exponent)
        import numpy as np

        return self.start_lr * self.decay_rate ** np.floor_divide(step, self.decay_steps)


def loss_prefactor(lr, start_lr: float, start: float, limit: float):
    """A loss prefactor moving from `start` to `limit` as lr decays from start_lr."""
    return limit + (start - limit) * lr / start_lr
