"""What the environment says about parallel training, read without TensorFlow: the cluster
description (TF_CONFIG, a Slurm job step), launchers this package does not use (mpirun,
horovodrun) and the rank of this process (DeePMD-kit's thread settings: threads.py).

DeePMD-kit trains in parallel with Horovod (deepmd/tf/train/run_options.py:
RunOptions._setup_horovod) and, when Horovod is missing, lets every rank train alone; here a
process started by mpirun or horovodrun without a cluster description is refused with the ways
to launch."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

LAUNCH_HELP = ("launch data-parallel training with one of: `dp train --workers N INPUT` (N "
               "local processes), `srun dp train INPUT` (Slurm, one task per worker), or one "
               "`dp train INPUT` per worker with TF_CONFIG set (tf.distribute's cluster "
               "description)")
# environment variables of MPI launchers and Horovod: (size variable, launcher)
MPI_SIZES = (("OMPI_COMM_WORLD_SIZE", "mpirun (Open MPI)"),
             ("PMI_SIZE", "mpirun (MPICH/Intel MPI)"),
             ("PMIX_SIZE", "mpirun (PMIx)"), ("HOROVOD_SIZE", "horovodrun"),
             ("MV2_COMM_WORLD_SIZE", "mpirun (MVAPICH)"))


class ClusterError(RuntimeError):
    """The cluster described by the environment cannot be used or formed."""


def _tf_config(environ: Mapping[str, str]) -> dict:
    """TF_CONFIG parsed and checked: a cluster with a worker (or chief) list of host:port
    addresses, and this process's task in it."""
    text = environ["TF_CONFIG"]
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({err}): {text!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(cluster.get(j) for j in ("chief", "worker")):
        raise ClusterError("TF_CONFIG needs \"cluster\": {\"worker\": [\"host:port\", ...]} "
                           f"(a \"chief\" list is optional); got {text!r}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
                isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses):
            raise ClusterError(f"TF_CONFIG cluster/{job} must be a list of \"host:port\" "
                               f"strings; got {addresses!r}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in ("chief", "worker"):
        raise ClusterError("TF_CONFIG needs \"task\": {\"type\": \"worker\" (or \"chief\"), "
                           f"\"index\": i}}; got {task!r}")
    index = task.get("index", 0)
    jobs = cluster.get(task["type"]) or []
    if not isinstance(index, int) or not 0 <= index < len(jobs):
        raise ClusterError(f"TF_CONFIG task/index {index!r} is not an index of "
                           f"cluster/{task['type']} ({len(jobs)} addresses)")
    return config


def cluster_source(environ: Mapping[str, str] = os.environ) -> str | None:
    """"tf_config", "slurm" or None (one process); ClusterError for a bad TF_CONFIG or an MPI
    launch without a cluster description."""
    if environ.get("TF_CONFIG"):
        config = _tf_config(environ)
        size = sum(len(config["cluster"].get(job) or []) for job in ("chief", "worker"))
        return "tf_config" if size > 1 else None
    if environ.get("SLURM_STEP_ID") is not None and int(environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    for name, launcher in MPI_SIZES:
        if int(environ.get(name, "1") or "1") > 1:
            raise ClusterError(f"this process was started by {launcher} with {environ[name]} "
                               "processes, but deepmd_tebd does not use MPI or Horovod; "
                               "every process would train alone and write the same files. "
                               + LAUNCH_HELP)
    return None


def _ranks(environ: Mapping[str, str]) -> tuple[int, int]:
    """(rank, local rank) of this process; (0, 0) without a (valid) cluster description."""
    try:
        source = cluster_source(environ)
    except ClusterError:
        return 0, 0
    if source == "slurm":
        return int(environ.get("SLURM_PROCID", "0")), int(environ.get("SLURM_LOCALID", "0"))
    if source != "tf_config":
        return 0, 0
    config = json.loads(environ["TF_CONFIG"])
    task, cluster = config["task"], config["cluster"]
    index = task.get("index", 0)
    rank = index if task["type"] == "chief" else len(cluster.get("chief") or []) + index
    hosts = [a.rpartition(":")[0] for job in ("chief", "worker") for a in cluster.get(job) or []]
    return rank, hosts[:rank].count(hosts[rank])


def process_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's worker rank as the environment gives it (0 when there is no cluster):
    the chief first, then the workers (tf.distribute's id_in_cluster)."""
    return _ranks(environ)[0]


def local_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This worker's index among the workers of its host (0 when there is no cluster): Slurm's
    SLURM_LOCALID, or for TF_CONFIG the number of tasks before it (chief first) on the same
    host name."""
    return _ranks(environ)[1]


def gpu_of_worker(environ: Mapping[str, str], gpus: int) -> int | None:
    """The GPU (index among the `gpus` this process sees) a worker of a cluster trains on: its
    local rank, as DeePMD-kit's deepmd/tf/train/run_options.py (_setup_horovod) picks
    Horovod's local rank; None without GPUs. ClusterError when the host runs more workers than
    it has GPUs."""
    if gpus == 0:
        return None
    local = local_rank(environ)
    if local >= gpus:
        raise ClusterError(f"this host runs more workers than it has GPUs: worker {local + 1} "
                           f"of this host sees {gpus} GPU(s); start one worker per GPU")
    return local
