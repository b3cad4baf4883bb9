"""The `exp` learning-rate schedule, pure in the step: DeePMD-kit 2.2's staircase exponential
decay, with DeePMD-kit 3.x's optional warm-up, explicit decay rate and smooth decay.

After W warm-up steps (warmup_steps, or warmup_ratio * numb_steps; none by default) that rise
linearly from warmup_start_factor * start_lr to start_lr,

    lr(t) = max(stop_lr, start_lr * decay_rate ** k),   k = floor((t - W) / decay_steps)
                                                        (or (t - W) / decay_steps, smooth)
    decay_rate = exp(ln(stop_lr / start_lr) / ((numb_steps - W) / decay_steps))

unless decay_rate is given, so that lr reaches stop_lr at numb_steps. When decay_steps >=
numb_steps - W (and no decay_rate is given) it is replaced by 100 if (numb_steps - W) // 10 > 100,
else by (numb_steps - W) // 100 + 1 (DeePMD-kit's rule). Without the 3.x keys this is DeePMD-kit
2.2's schedule (lr never falls below stop_lr before numb_steps, so the floor changes nothing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ExpDecayLR:
    """The exponential decay from start_lr to stop_lr over numb_steps, after a warm-up."""

    start_lr: float
    stop_lr: float
    decay_steps: int
    numb_steps: int
    given_decay_rate: Optional[float] = None
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    smooth: bool = False

    @classmethod
    def from_config(cls, settings, numb_steps: int) -> "ExpDecayLR":
        """The schedule of the `learning_rate` settings (config.objects.LearningRateConfig)."""
        warmup = settings.warmup(numb_steps)
        decay_steps, decay_total = settings.decay_steps, numb_steps - warmup
        if settings.decay_rate is None and decay_steps >= decay_total:
            decay_steps = 100 if decay_total // 10 > 100 else decay_total // 100 + 1
        return cls(settings.start_lr, settings.stop_lr, decay_steps, numb_steps,
                   settings.decay_rate, warmup, settings.warmup_start_factor * settings.start_lr,
                   settings.smooth)

    @property
    def decay_rate(self) -> float:
        """The factor applied every decay_steps steps."""
        if self.given_decay_rate is not None:
            return self.given_decay_rate
        decay_total = self.numb_steps - self.warmup_steps
        if decay_total <= 0:
            return 1.0
        # DeePMD-kit 3.2 raises stop_lr to 1e-10 here; 2.2 does not, nor does this package
        return math.exp(math.log(self.stop_lr / self.start_lr) /
                        (decay_total / self.decay_steps))

    def value(self, step):
        """lr at `step` (a Python int, a NumPy array or a TensorFlow tensor; a float for an
        int)."""
        import tensorflow as tf

        if tf.is_tensor(step) or isinstance(step, tf.Variable):
            return self._value(tf.cast(step, tf.float64), tf.math.floor, tf.pow, tf.maximum,
                               tf.where, tf.constant(self.decay_rate, tf.float64))
        import numpy as np

        lr = self._value(np.asarray(step, dtype=np.float64), np.floor, np.power, np.maximum,
                         np.where, self.decay_rate)
        return float(lr) if isinstance(step, int) else lr

    def _value(self, step, floor, power, maximum, where, rate):
        """value() on float64 steps, with the array library's functions."""
        k = maximum(step - float(self.warmup_steps), 0.0) / float(self.decay_steps)
        decayed = maximum(self.start_lr * power(rate, k if self.smooth else floor(k)),
                          self.stop_lr)
        if not self.warmup_steps:
            return decayed
        rising = self.warmup_start_lr + (self.start_lr - self.warmup_start_lr) * (
            step / float(self.warmup_steps))
        return where(step < float(self.warmup_steps), rising, decayed)


def loss_prefactor(lr, start_lr: float, start: float, limit: float):
    """A loss prefactor moving from `start` to `limit` as lr decays from start_lr."""
    return limit + (start - limit) * lr / start_lr
