"""Dynamic loss scaling of mixed-precision training, as DeePMD-kit 2.2 gets it from TensorFlow.

DeePMD-kit (deepmd/tf/train/trainer.py, DPTrainer._build_optimizer) wraps its Adam optimizer with
`tf.mixed_precision.enable_mixed_precision_graph_rewrite`, whose default loss scale is TF1's
`DynamicLossScale` (tensorflow/python/training/experimental/loss_scale.py and
loss_scale_optimizer.py, `MixedPrecisionLossScaleOptimizer`):

* the loss (cast to output_prec by DPTrainer._build_loss) is multiplied by the scale, the
  gradients by 1 / scale;
* if every gradient is finite, the update is applied (and the global step incremented); after
  `increment_period` such steps in a row the scale is multiplied by `multiplier`;
* otherwise no update is applied, the global step stays, the scale is divided by `multiplier`
  (not below 1) and the count of good steps restarts.

The scale and the count are checkpointed with the optimizer state.
"""
from __future__ import annotations

import tensorflow as tf


class DynamicLossScale(tf.Module):
    """TF1's DynamicLossScale: initial 2**15, doubled after 2000 finite steps, halved on a
    non-finite one."""

    def __init__(self, initial: float = 2.0 ** 15, increment_period: int = 2000,
                 multiplier: float = 2.0, name: str = "loss_scale"):
        super().__init__(name=name)
        self.increment_period = int(increment_period)
        self.multiplier = float(multiplier)
        self.scale = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def scaled(self, loss):
        """The loss times the scale (in the loss's dtype)."""
        return loss * tf.cast(self.scale, loss.dtype)

    def unscaled(self, gradients) -> list:
        """The gradients times 1 / scale (None stays None)."""
        reciprocal = 1.0 / self.scale
        return [None if g is None else g * tf.cast(reciprocal, g.dtype) for g in gradients]

    def update(self, gradients):
        """Updates the scale from this step's gradients; returns whether they are all finite
        (whether the step applies its update)."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients
                                if g is not None])

        def grow():
            grown = self.scale * self.multiplier
            return tf.group(self.scale.assign(tf.where(tf.math.is_finite(grown), grown,
                                                       self.scale)),
                            self.good_steps.assign(0))

        def count():
            return tf.group(self.good_steps.assign_add(1))

        def shrink():
            return tf.group(self.scale.assign(tf.maximum(self.scale / self.multiplier, 1.0)),
                            self.good_steps.assign(0))

        tf.cond(finite, lambda: tf.cond(self.good_steps + 1 >= self.increment_period, grow,
                                        count), shrink)
        return finite
