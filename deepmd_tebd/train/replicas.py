"""Several replicas in one process: tf.distribute.MirroredStrategy over the GPUs this process
sees (or over $DP_CPU_REPLICAS logical CPU devices on a host without GPUs), as DeePMD-kit gives
each Horovod rank a GPU of the node (deepmd/tf/train/run_options.py: _setup_horovod).

Replica r trains on batches of its own, drawn with the data seed training.seed + r; per step the
gradients are averaged over the replicas (the strategy's all-reduce: NCCL between GPUs) and
the update is applied once, in cross-replica context, to the process's ordinary variables (on
the first device), so checkpoints, freezing and statistics are those of one process. The step
itself is train/strategy.py: Replicas; here, the devices and the strategy."""
from __future__ import annotations

import logging
import os

import tensorflow as tf

log = logging.getLogger("deepmd_tebd")

CPU_REPLICAS_ENV = "DP_CPU_REPLICAS"


def local_devices(environ=os.environ) -> list[str]:
    """The devices of this process's replicas: every visible GPU when there are several, else
    $DP_CPU_REPLICAS (N > 1) logical CPU devices (created here, before TensorFlow's runtime
    starts); one device (no replicas) otherwise."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return [f"/GPU:{i}" for i in range(len(gpus))]
    text = environ.get(CPU_REPLICAS_ENV) or "1"
    if not text.isdigit() or int(text) < 1:
        from .cluster_env import ClusterError

        raise ClusterError(f"{CPU_REPLICAS_ENV}={text!r}: expected a positive integer (the "
                           "number of replicas on the CPU)")
    count = int(text)
    if count > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        return [f"/CPU:{i}" for i in range(count)]
    if count > 1:
        log.warning("%s=%d ignored: this process trains on its GPU", CPU_REPLICAS_ENV, count)
    return ["/GPU:0" if gpus else "/CPU:0"]


def mirrored_strategy(devices: list[str]) -> tf.distribute.MirroredStrategy:
    """A MirroredStrategy over `devices` (NCCL all-reduce between GPUs, a reduction on one
    device between CPUs)."""
    cross = None if devices[0].startswith("/GPU") else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
