"""The traced training and evaluation steps: one tf.function each, with a fixed input signature so
that every batch (of any system) runs the same graph; no Python work happens per step."""
from __future__ import annotations

import tensorflow as tf

from ..model.kernels import training_kernels
from .strategy import SingleProcess

# batch key -> (dtype, shape); labels are present only when the loss needs them
BATCH_SPEC = {
    "coord": (tf.float64, [None, None]),
    "box": (tf.float64, [None, 9]),
    "type": (tf.int32, [None, None]),
    "natoms_vec": (tf.int32, [None]),
    "default_mesh": (tf.int32, [None]),
    "energy": (tf.float64, [None]),
    "force": (tf.float64, [None, None]),
    "virial": (tf.float64, [None, 9]),
    "atom_ener": (tf.float64, [None, None]),
    "atom_pref": (tf.float64, [None, None]),
}


def batch_signature(labels: list[str]) -> dict:
    """The TensorSpec of every batch array the step takes (with these labels)."""
    keys = ["coord", "box", "type", "natoms_vec", "default_mesh"] + labels
    spec = {k: tf.TensorSpec(BATCH_SPEC[k][1], BATCH_SPEC[k][0], name=k) for k in keys}
    spec.update({f"find_{k}": tf.TensorSpec([], tf.float64, name=f"find_{k}") for k in labels})
    return spec


def step_input(batch: dict, signature: dict) -> dict:
    """The arrays of a batch that a step's `signature` (batch_signature) names, as tensors of its
    dtypes: converted by the caller, not by the step's call."""
    return {k: tf.convert_to_tensor(batch[k], spec.dtype) for k, spec in signature.items()}


def make_steps(model, loss, optimizer, lr_schedule, step_var, labels, loss_scale=None,
               loss_dtype=None, strategy=None):
    """(train_step, evaluate): train_step(batch) applies one update and returns nothing;
    evaluate(batch) returns the loss's reported errors for the current weights.

    strategy (train/strategy.py; None: SingleProcess, one process on one device): how the update
    runs (its run), how the gradients are reduced and the update applied (reduce, apply), the
    optimizer's rate (rate: the loss keeps the schedule's) and what train_step takes
    (train_signature: one batch, or a tuple of one per replica).

    Mixed precision (DeePMD-kit's DPTrainer._build_loss and _build_optimizer): the loss is cast
    to loss_dtype (output_prec) and scaled by `loss_scale` (train/loss_scale.py); a step whose
    gradients are not all finite applies no update and does not advance the step."""
    strategy = SingleProcess() if strategy is None else strategy
    signature = [batch_signature(labels)]
    variables = model.trainable_variables

    def predict(batch):
        with training_kernels():  # the training step's own kernels (model/kernels.py)
            return model(batch["coord"], batch["type"], batch["natoms_vec"], batch["box"],
                         batch["default_mesh"])

    def apply(gradients, lr):
        optimizer.apply(gradients, variables, strategy.rate(lr))
        step_var.assign_add(1)
        return tf.constant(True)

    def update(batch):
        lr = lr_schedule.value(step_var)
        with tf.GradientTape() as tape:
            value, _ = loss(lr, predict(batch), batch, batch["natoms_vec"])
            if loss_scale is not None:
                value = loss_scale.scaled(tf.cast(value, loss_dtype))
        gradients = strategy.reduce(tape.gradient(value, variables))
        strategy.apply(finish, gradients, lr)

    def finish(gradients, lr):
        if loss_scale is None:
            apply(gradients, lr)
        else:
            gradients = loss_scale.unscaled(gradients)
            tf.cond(loss_scale.update(gradients), lambda: apply(gradients, lr),
                    lambda: tf.constant(False))

    @tf.function(input_signature=strategy.train_signature(signature), autograph=False)
    def train_step(batch):
        strategy.run(update, batch)

    @tf.function(input_signature=signature, autograph=False)
    def evaluate(batch):
        lr = lr_schedule.value(step_var)
        _, errors = loss(lr, predict(batch), batch, batch["natoms_vec"])
        return errors

    return train_step, evaluate
