"""Adam updates equal TensorFlow 1's AdamOptimizer (as tf.compat.v1 computes it)."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.train.adam import Adam


@pytest.mark.parametrize("beta1, beta2", [(0.9, 0.999), (0.8, 0.99)])  # defaults, optimizer/*
def test_updates_match_tf1_adam(beta1, beta2):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    grads = [[rng.normal(size=(3, 4)), rng.normal(size=5)] for _ in range(4)]
    lrs = [1e-3, 1e-3, 5e-4, 2e-4]

    ours = [tf.Variable(x) for x in start]
    adam = Adam(ours, beta1=beta1, beta2=beta2)
    for g, lr in zip(grads, lrs):
        adam.apply([tf.constant(x) for x in g], ours, lr)

    theirs = [tf.Variable(x) for x in start]
    # the learning rate changes between steps through a variable the v1 optimizer reads
    lr_var = tf.Variable(lrs[0], dtype=tf.float32)  # DeePMD-kit's learning rate is float32
    opt = tf.compat.v1.train.AdamOptimizer(learning_rate=lambda: lr_var, beta1=beta1, beta2=beta2,
                                           epsilon=1e-8)
    for g, lr in zip(grads, lrs):
        lr_var.assign(lr)
        opt.apply_gradients([(tf.constant(x), v) for x, v in zip(g, theirs)])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-15)


def test_fused_update_equals_the_assignments_used_under_a_strategy():
    rng = np.random.default_rng(1)
    start = [rng.normal(size=(4, 3)), rng.normal(size=(6,)).astype(np.float32)]
    grads = [[rng.normal(size=(4, 3)), rng.normal(size=6).astype(np.float32)] for _ in range(3)]
    results = []
    for scope in (None, tf.distribute.OneDeviceStrategy("/cpu:0")):
        variables = [tf.Variable(x) for x in start]
        adam = Adam(variables)
        for g in grads:
            if scope is None:  # one ResourceApplyAdam per variable
                adam.apply([tf.constant(x) for x in g], variables, 1e-3)
            else:
                with scope.scope():  # the assignment path
                    adam.apply([tf.constant(x) for x in g], variables, 1e-3)
        results.append([v.numpy() for v in variables + adam.m + adam.v])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_state_round_trips_through_a_checkpoint(tmp_path):
    var = [tf.Variable(np.ones(3))]
    adam = Adam(var)
    adam.apply([tf.constant(np.full(3, 0.5))], var, 1e-3)
    path = tf.train.Checkpoint(adam=adam, var=var[0]).write(str(tmp_path / "c"))
    other_var = [tf.Variable(np.zeros(3))]
    other = Adam(other_var)
    tf.train.Checkpoint(adam=other, var=other_var[0]).read(path).assert_consumed()
    assert int(other.iterations) == 1
    np.testing.assert_array_equal(other.m[0].numpy(), adam.m[0].numpy())
