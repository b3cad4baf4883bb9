"""Data-parallel training on tf.distribute.MultiWorkerMirroredStrategy, with DeePMD-kit's
semantics (deepmd/tf/train/trainer.py: DPTrainer with Horovod, deepmd/tf/train/run_options.py):

- every worker samples its own batches from the whole data set with the data RNG keyed
  [rank, training.seed] (deepmd/tf/entrypoints/train.py: train);
- the statistics are computed on the chief alone, and the chief's weights, statistics and
  optimizer state are copied to every worker before the first step (Horovod's
  broadcast_global_variables);
- per step the gradients are averaged over the workers (one all-reduce) and the optimizer's
  rate is scaled by learning_rate/scale_by_worker (linear: x N, sqrt: x sqrt(N), none); the loss
  prefactors and the lcurve keep the unscaled rate;
- the chief alone validates and writes lcurve.out, checkpoints and TensorBoard;
- on a host with GPUs each worker trains on the GPU of its local rank (its index among the
  workers of the host: TF_CONFIG's order, or SLURM_LOCALID), as deepmd/tf/train/run_options.py
  (_setup_horovod) gives each Horovod rank the GPU of its local rank;
- a SIGINT/SIGTERM received by any worker travels with that step's all-reduce, so that every
  worker stops after the same step and the chief writes a checkpoint; a worker that dies makes
  the others stop with a ClusterError within seconds (the coordination service's heartbeats),
  a cluster that cannot be formed fails within $DP_CLUSTER_TIMEOUT s (default 40).

The variables are ordinary (not mirrored) variables of each process: the strategy is used for
its collectives; how a step runs (all-reduce, stop votes, rate) is train/strategy.py: Workers.
One process with several GPUs (or $DP_CPU_REPLICAS) trains one replica per device under
MirroredStrategy (train/replicas.py, train/strategy.py: Replicas); a process with one device and
no cluster runs none of this, and its traced step is the single-process one.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import tensorflow as tf

from .cluster_env import ClusterError, cluster_source, gpu_of_worker
from .strategy import cluster_strategy
from .trainer import Trainer

log = logging.getLogger("deepmd_tebd")

DEFAULT_CLUSTER_TIMEOUT_S = 40
HEARTBEAT_TIMEOUT_S = 10
LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.CancelledError,
                      tf.errors.DeadlineExceededError, tf.errors.InternalError,
                      tf.errors.AbortedError, tf.errors.FailedPreconditionError)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The workers of a data-parallel run as this process sees them (rank 0: the chief)."""

    strategy: tf.distribute.Strategy
    rank: int
    size: int
    devices: tuple
    source: str
    replicas: int = 1  # replicas of this process (MirroredStrategy); size counts replicas

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the outputs."""
        return self.rank == 0

    @property
    def processes(self) -> int:
        """The number of worker processes."""
        return self.size // self.replicas


def check_supported(config, source: str) -> None:
    """Refuses what a data-parallel run of several processes cannot do: early stopping is
    decided by the chief's whole-validation figures alone, and the other workers would not
    stop with it."""
    whole = config.training.whole_validation
    if whole is not None and whole.early_stopping is not None:
        from ..config.errors import ConfigError, Problem

        raise ConfigError(source, [Problem("training/whole_validation/early_stopping",
                                           "not supported in a data-parallel run: remove it, "
                                           "or train in one process")])


def _configure_coordination(spec, timeout_s: int) -> None:
    """The coordination service with bounded waits: registration of every worker within
    timeout_s, peers declared dead after HEARTBEAT_TIMEOUT_S without heartbeats."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        cluster_register_timeout_in_ms=timeout_s * 1000,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
        shutdown_barrier_timeout_in_ms=timeout_s * 1000, coordinated_jobs=jobs)


_WATCHDOG = """import os, signal, sys, time
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(seconds)
if os.getppid() == parent:
    print("DEEPMD ERROR   " + message, file=sys.stderr, flush=True)
    os.kill(parent, signal.SIGHUP)
    time.sleep(5)
    if os.getppid() == parent:
        os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def _watchdog(seconds: float, message: str):
    """Within the block: a process that prints `message` and ends this one with exit status 1
    after `seconds` unless the block has ended first.

    The end cannot be Python code (TensorFlow's waiting leader holds the interpreter), so the
    watchdog sends SIGHUP while its handler here is the C library's `_exit`: the handler is
    called with the signal's number, and SIGHUP's is 1, the status of every input error of dp.
    Should that fail, SIGKILL follows 5 s later."""
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    exit_now = ctypes.cast(libc._exit, ctypes.c_void_p).value
    assert signal.SIGHUP == 1
    previous = libc.signal(signal.SIGHUP, exit_now)
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                                 str(seconds), message])
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()
        libc.signal(signal.SIGHUP, previous)


def _barrier(strategy, timeout_s: int) -> None:
    """Returns once every worker has joined (an all-reduce); DeadlineExceededError after
    timeout_s (the coordination service alone lets the leader wait for ever)."""
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=timeout_s,
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)

    def join():
        return tf.distribute.get_replica_context().all_reduce("sum", tf.ones([]), options)

    tf.function(lambda: strategy.run(join))()


def _use_own_gpu(gpus: list) -> None:
    """A worker on a host with GPUs trains on the GPU of its local rank alone
    (cluster_env.gpu_of_worker); set before TensorFlow's devices start."""
    index = gpu_of_worker(os.environ, len(gpus))
    if index is not None:
        tf.config.set_visible_devices(gpus[index], "GPU")
        log.info("this worker trains on GPU %d of the %d of its host", index, len(gpus))


def _resolver(source: str):
    """TensorFlow's cluster resolver of a TF_CONFIG cluster or a Slurm job step (ports from
    $DP_SLURM_PORT_BASE, default 8888, one per task of a node)."""
    if source != "slurm":
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # SlurmClusterResolver places at most gpus_per_node / gpus_per_task tasks on a node and,
    # left to itself, counts GPUs with nvidia-smi: one slot per task of the step lets it place
    # every task on CPU nodes too; the GPUs are chosen by _use_own_gpu, not by the resolver
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or 1)
    try:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(os.environ.get("DP_SLURM_PORT_BASE") or 8888),
            gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)
    except (RuntimeError, ValueError) as err:
        raise ClusterError(f"the Slurm job step cannot be read: {err}") from None


def connect() -> Cluster | None:
    """The cluster the environment describes (TF_CONFIG, a Slurm job step), formed within
    $DP_CLUSTER_TIMEOUT seconds (default 40); None for one process. ClusterError when it
    cannot be formed."""
    source = cluster_source()
    timeout_s = int(os.environ.get("DP_CLUSTER_TIMEOUT") or DEFAULT_CLUSTER_TIMEOUT_S)
    if source is None:
        return _replicas_of_this_process()
    from tensorflow.python.distribute import multi_worker_util

    gpus = tf.config.list_physical_devices("GPU")
    resolver = _resolver(source)
    _use_own_gpu(gpus)
    spec = resolver.cluster_spec()
    addresses = [a for job in ("chief", "worker") if job in spec.jobs
                 for a in spec.job_tasks(job)]
    _configure_coordination(spec, timeout_s)
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)

    def failure(reason: str) -> str:
        return (f"the cluster of {len(addresses)} workers {addresses} (from "
                f"{'Slurm' if source == 'slurm' else 'TF_CONFIG'}) could not be formed within "
                f"{timeout_s} s: {reason}. Every worker must be started with the same "
                "cluster, and each address must be reachable and its port free")

    # the leader of the coordination service waits for its peers without a time limit, in
    # TensorFlow's context initialisation and holding the GIL: a watchdog process ends it
    try:
        with _watchdog(timeout_s, failure("the other workers did not join")):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options)
            _barrier(strategy, timeout_s)
    except (tf.errors.OpError, RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ClusterError(failure(reason)) from None
    rank = multi_worker_util.id_in_cluster(spec, resolver.task_type, resolver.task_id)
    cluster = Cluster(strategy, rank, len(addresses), tuple(strategy.extended.worker_devices),
                      source)
    log.info("distributed training: world size %d, my rank %d, workers %s, devices %s",
             cluster.size, cluster.rank, addresses, list(cluster.devices))
    return cluster


def _replicas_of_this_process() -> Cluster | None:
    """One process training a replica on each of its devices (train/replicas.py); None for
    one device."""
    from .replicas import local_devices, mirrored_strategy

    devices = local_devices()
    if len(devices) == 1:
        return None
    cluster = Cluster(mirrored_strategy(devices), 0, len(devices), tuple(devices), "local",
                      replicas=len(devices))
    log.info("data-parallel training in one process: %d replicas on %s (MirroredStrategy)",
             cluster.size, ", ".join(devices))
    return cluster


def broadcast_from_chief(cluster: Cluster, variables) -> None:
    """Gives every worker the chief's values of `variables` (an all-reduce of the chief's
    values and the others' zeros: exact)."""
    groups = {}
    for variable in variables:
        dtype = tf.as_dtype(variable.dtype)
        if dtype != tf.string:
            groups.setdefault(dtype, []).append(variable)

    def copy():
        context = tf.distribute.get_replica_context()
        for group in groups.values():
            values = [tf.identity(v) if cluster.is_chief else tf.zeros_like(v) for v in group]
            for variable, value in zip(group, context.all_reduce("sum", values)):
                variable.assign(value)

    tf.function(lambda: cluster.strategy.run(copy))()


class DistributedTrainer(Trainer):
    """The Trainer of one worker of a data-parallel run (see the module docstring); its steps
    run as train/strategy.py: cluster_strategy has them (Workers, or Replicas with
    replica_data: the training data of this process's other replicas, cluster.replicas - 1,
    each with its own data seed)."""

    def __init__(self, cluster: Cluster, config, model, train_data, valid_data, lr, loss,
                 min_nbor_dist=None, replica_data=()):
        self.cluster = cluster
        if not cluster.is_chief:  # no lcurve, validation, TensorBoard on the other workers
            config = dataclasses.replace(config, training=dataclasses.replace(
                config.training, disp_training=False, tensorboard=False, whole_validation=None))
        strategy = cluster_strategy(cluster, config.learning_rate.scale_by_worker,
                                    tf.as_dtype(model.trainable_variables[0].dtype),
                                    replica_data)
        super().__init__(config, model, train_data, valid_data, lr, loss, min_nbor_dist,
                         strategy)

    # -- outputs and state -----------------------------------------------------------------
    def _save(self, step, sampling, validate: bool = True) -> None:
        if self.cluster.is_chief:
            super()._save(step, sampling, validate)

    def synchronize(self) -> None:
        """Every worker takes the chief's weights, statistics, optimizer state and step (one
        process: nothing to do, its replicas share its variables)."""
        if self.cluster.processes == 1:
            return
        broadcast_from_chief(self.cluster, list(self.model.variables) +
                             list(self.optimizer.variables) + [self.step])

    def restart(self, prefix: str) -> None:
        """As Trainer.restart; the other workers draw new batches (their sampling state is not
        in the chief's checkpoint): data seed from (training.seed, rank, step)."""
        super().restart(prefix)
        seed, step = self.training.seed, int(self.step)
        first = self.cluster.rank * self.cluster.replicas
        others = [] if self.cluster.is_chief else [(first, self.train_data)]
        for replica, data in enumerate(self.strategy.replica_data, start=first + 1):
            others.append((replica, data))
        for replica, data in others:
            entropy = None if seed is None else [int(seed), replica, step]
            data.rng.seed(np.random.SeedSequence(entropy).generate_state(1)[0])

    def run(self, restarted: bool = False) -> None:
        """As Trainer.run; a lost worker stops this one with a ClusterError."""
        try:
            super().run(restarted)
        except LOST_WORKER_ERRORS as err:
            reason = str(err.message).strip().splitlines()
            prefix = self.training.save_ckpt
            raise ClusterError(
                f"worker {self.cluster.rank} of {self.cluster.size}: the cluster lost a worker "
                f"at step {int(self.step)} ({reason[0] if reason else type(err).__name__}); "
                f"the last checkpoint {prefix} is intact: continue with dp train INPUT "
                f"--restart {prefix} (with any number of workers)") from None
