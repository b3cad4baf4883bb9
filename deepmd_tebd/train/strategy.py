"""How a training step runs on each path of the trainer, one object per path:

- SingleProcess: one process on one device; the update runs as traced, on one batch, at the
  schedule's rate, and a signal stops this process alone;
- Workers: one replica per worker process of a cluster (MultiWorkerMirroredStrategy,
  train/distributed.py); the update runs under the strategy, the gradients are averaged over the
  workers by one all-reduce that also carries the stop requests (a SIGINT/SIGTERM to any worker
  stops every worker after the same step), and the optimizer's rate is scaled by
  lr_scale(learning_rate/scale_by_worker, workers);
- Replicas: several replicas in one process (MirroredStrategy, train/replicas.py), as Workers
  with one batch per replica, each drawn from its own DataSystem, and the update applied once per
  step, in cross-replica context, to the process's ordinary variables.

train/step.py: make_steps traces the update with a strategy's run, reduce, apply and rate; the
Trainer draws each step's input with its draw (prefetched while the previous step runs) and asks
it which signal stops training after a step.
"""
from __future__ import annotations

import logging
import math
import signal

import tensorflow as tf

log = logging.getLogger("deepmd_tebd")


def lr_scale(rule: str, size: int) -> float:
    """The factor of the optimizer's rate for `size` workers (learning_rate/scale_by_worker)."""
    return {"linear": float(size), "sqrt": math.sqrt(size), "none": 1.0}[rule]


class SingleProcess:
    """One process on one device: the traced update is the plain one."""

    def train_signature(self, signature: list) -> list:
        """The input signature of the traced train step, from that of one batch."""
        return signature

    def run(self, update, batch) -> None:
        """Runs update(batch) in the traced step."""
        update(batch)

    def reduce(self, gradients: list) -> list:
        """The gradients the update applies: this process's."""
        return gradients

    def apply(self, finish, gradients: list, lr) -> None:
        """Applies the update: finish(gradients, lr)."""
        finish(gradients, lr)

    def rate(self, lr):
        """The optimizer's rate at the schedule's rate lr (the loss keeps lr)."""
        return lr

    def draw(self, draw, data):
        """A step's input: draw(data), one batch of this process's training data."""
        return draw(data)

    def batches(self, batch) -> tuple:
        """The batches of a step's input, this process's first."""
        return (batch,)

    def own(self, batch) -> dict:
        """This process's batch of a step's input (what its display evaluates)."""
        return self.batches(batch)[0]

    def before_step(self, signum) -> None:
        """Host side, before each traced step, with the signal received so far (or None)."""

    def stop_signal(self, signum):
        """The signal that stops training after this step: the one received (or None)."""
        return signum


class Workers(SingleProcess):
    """One replica per worker process of `cluster` (train/distributed.py: Cluster); dtype: that of
    the stop flags (the gradients' they travel with)."""

    unit = "workers"
    replica_data = ()  # the training data of this process's other replicas

    def __init__(self, cluster, scale_by_worker: str, dtype):
        self.cluster = cluster
        self.lr_factor = lr_scale(scale_by_worker, cluster.size)
        log.info("scale learning rate by coef: %f (scale_by_worker %s, %d %s)", self.lr_factor,
                 scale_by_worker, cluster.size, self.unit)
        # 1 once this worker received a signal; the sum over the workers after each step
        self.stop_request = tf.Variable(tf.zeros([], dtype), trainable=False)
        self.stop_votes = tf.Variable(tf.zeros([], dtype), trainable=False)

    def run(self, update, batch) -> None:
        """Runs update(batch) under the cluster's strategy."""
        self.cluster.strategy.run(update, args=(batch,))

    def reduce(self, gradients: list) -> list:
        """The gradients averaged over the workers; the stop requests summed on the way."""
        context = tf.distribute.get_replica_context()
        groups = {}
        for i, gradient in enumerate(gradients):
            if gradient is not None:
                groups.setdefault(tf.as_dtype(gradient.dtype), []).append(i)
        flag_dtype = self.stop_request.dtype
        groups.setdefault(flag_dtype, [])
        reduced = list(gradients)
        for dtype, indices in groups.items():
            tensors = [tf.convert_to_tensor(gradients[i]) for i in indices]
            if dtype == flag_dtype:
                tensors.append(self.stop_request.read_value())
            summed = context.all_reduce("sum", tensors)
            if dtype == flag_dtype:
                self.stop_votes.assign(summed.pop())
            for i, value in zip(indices, summed):
                reduced[i] = value / tf.cast(self.cluster.size, dtype)
        return reduced

    def rate(self, lr):
        """The schedule's rate times lr_scale(scale_by_worker, size)."""
        return lr * self.lr_factor

    def before_step(self, signum) -> None:
        """A signal received: this worker's stop request goes with the step's all-reduce."""
        if signum is not None and float(self.stop_request) == 0:
            self.stop_request.assign(tf.ones_like(self.stop_request))

    def stop_signal(self, signum):
        """The signal that stops every worker after this step: any worker's request (seen in
        the all-reduce) stops this one too, with its own signal or SIGTERM."""
        if float(self.stop_votes) > 0:
            return signum or signal.SIGTERM
        return None


class Replicas(Workers):
    """Several replicas in one process (cluster.replicas; train/distributed.py: Cluster);
    replica_data: the training data of the replicas after the first (each with its own data
    seed)."""

    unit = "replicas"

    def __init__(self, cluster, scale_by_worker: str, dtype, replica_data):
        super().__init__(cluster, scale_by_worker, dtype)
        self.replica_data = tuple(replica_data)

    def train_signature(self, signature: list) -> list:
        """A tuple of batches, one per replica."""
        return [tuple(signature * self.cluster.replicas)]

    def run(self, update, batch) -> None:
        """Runs update on each replica with its batch (copied to the replica's device)."""
        def value(context):
            return tf.nest.map_structure(tf.identity, batch[context.replica_id_in_sync_group])

        super().run(update, self.cluster.strategy.experimental_distribute_values_from_function(
            value))

    def apply(self, finish, gradients: list, lr) -> None:
        """finish(gradients, lr) once per step in cross-replica context, with the first
        replica's (already all-reduced, so identical) gradients; from a replica's context."""
        present = [i for i, g in enumerate(gradients) if g is not None]

        def merged(strategy, values, rate):
            def first(x):
                return strategy.experimental_local_results(x)[0]

            chosen = list(gradients)
            for i, value in zip(present, values):
                chosen[i] = first(value)
            finish(chosen, first(rate))

        tf.distribute.get_replica_context().merge_call(
            merged, args=([gradients[i] for i in present], lr))

    def draw(self, draw, data):
        """A step's input: a batch of this process's data, then one of each other replica's, in
        replica order."""
        return (draw(data), *(draw(other) for other in self.replica_data))

    def batches(self, batch) -> tuple:
        """The batches of a step's input, one per replica."""
        return batch


def cluster_strategy(cluster, scale_by_worker: str, dtype, replica_data=()) -> Workers:
    """The strategy of a worker of `cluster`: Replicas for a process of several replicas (with
    the other replicas' training data), Workers otherwise."""
    if cluster.replicas > 1:
        return Replicas(cluster, scale_by_worker, dtype, replica_data)
    return Workers(cluster, scale_by_worker, dtype)
