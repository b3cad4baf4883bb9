"""Adam as TensorFlow 1's AdamOptimizer computes it (DeePMD-kit's optimizer):

    lr_t = lr sqrt(1 - b2_power) / (1 - b1_power)
    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  theta -= m lr_t / (sqrt(v) + eps)

The learning rate, the powers b1^t, b2^t and b1, b2, eps are float32 (cast to the variables'
precision), as in TF1 and DeePMD-kit. Slots are plain tf.Variables, so the optimizer state is
checkpointed with the model and the update traces inside the training step."""
from __future__ import annotations

import tensorflow as tf


class Adam(tf.Module):
    """Adam with the moments and beta powers as checkpointed variables."""

    def __init__(self, variables, beta1=0.9, beta2=0.999, epsilon=1e-8, name="adam"):
        super().__init__(name=name)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.beta1_power = tf.Variable(beta1, dtype=tf.float32, trainable=False, name="b1_power")
        self.beta2_power = tf.Variable(beta2, dtype=tf.float32, trainable=False, name="b2_power")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def apply(self, gradients, variables, lr) -> None:
        """One update of `variables` with `gradients` at learning rate lr.

        Outside a distribution strategy each variable takes one ResourceApplyAdam, the kernel of
        TF1's AdamOptimizer (one graph node per variable instead of about twenty: the traced
        step of a model with many per-type nets is that much faster to build and optimise).
        Under a strategy (data-parallel training: mirrored variables, updated in cross-replica
        context) the same formulas are written as variable assignments."""
        fused = not tf.distribute.has_strategy()
        scalars = {}  # dtype -> (b1^t, b2^t, lr, beta1, beta2, epsilon) in that dtype
        for g, var, m, v in zip(gradients, variables, self.m, self.v):
            if g is None:
                continue
            g = tf.convert_to_tensor(g)
            dt = g.dtype
            if dt not in scalars:
                scalars[dt] = (tf.cast(self.beta1_power, dt), tf.cast(self.beta2_power, dt),
                               tf.cast(tf.cast(lr, tf.float32), dt),
                               # float32 constants cast, as TF1 converts the Python floats
                               *(tf.cast(tf.constant(x, tf.float32), dt)
                                 for x in (self.beta1, self.beta2, self.epsilon)))
            b1p, b2p, lr_dt, beta1, beta2, eps = scalars[dt]
            if fused:
                tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle,
                                             beta1_power=b1p, beta2_power=b2p, lr=lr_dt,
                                             beta1=beta1, beta2=beta2, epsilon=eps, grad=g)
                continue
            lr_t = lr_dt * tf.sqrt(1 - b2p) / (1 - b1p)
            m.assign_add((g - m) * (1 - beta1))
            v.assign_add((tf.square(g) - v) * (1 - beta2))
            var.assign_sub(m * lr_t / (tf.sqrt(v) + eps))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)
        self.iterations.assign_add(1)
