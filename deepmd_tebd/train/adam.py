"""Adam as TensorFlow 1's AdamOptimizer computes it (DeePMD-kit's optimizer):

    lr_t = lr sqrt(1 - b2_power) / (1 - b1_power)
    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  theta -= m lr_t / (sqrt(v) + eps)

The learning rate and the powers b1^t, b2^t are float32, as in TF1 and DeePMD-kit whatever the
variables' precision. Slots are plain tf.Variables, so the optimizer state is checkpointed with the model and
the update traces inside the training step."""
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
        """One update of `variables` with `gradients` at learning rate lr."""
        for g, var, m, v in zip(gradients, variables, self.m, self.v):
            if g is None:
                continue
            g = tf.convert_to_tensor(g)
            dt = g.dtype
            b1p = tf.cast(self.beta1_power, dt)
            b2p = tf.cast(self.beta2_power, dt)
            lr_t = tf.cast(tf.cast(lr, tf.float32), dt) * tf.sqrt(1 - b2p) / (1 - b1p)
            m.assign_add((g - m) * (1 - tf.cast(self.beta1, dt)))
            v.assign_add((tf.square(g) - v) * (1 - tf.cast(self.beta2, dt)))
            var.assign_sub(m * lr_t / (tf.sqrt(v) + tf.cast(self.epsilon, dt)))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)
        self.iterations.assign_add(1)
