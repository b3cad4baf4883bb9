"""What the environment says about parallel training (train/cluster_env.py) and the launcher's
worker environments (train/launcher.py), without TensorFlow."""
import json

import pytest

from deepmd_tebd.train.cluster_env import (ClusterError, cluster_source, process_rank,
                                           thread_counts)
from deepmd_tebd.train.launcher import free_ports, without_workers_option, worker_environment


def tf_config(index, workers=2, chief=0):
    cluster = {"worker": [f"127.0.0.1:{1000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:999"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}})}


def test_no_description_is_one_process():
    assert cluster_source({}) is None and process_rank({}) == 0


def test_a_one_worker_tf_config_is_one_process():
    assert cluster_source(tf_config(0, workers=1)) is None


def test_workers_rank_after_the_chief():
    assert cluster_source(tf_config(1)) == "tf_config" and process_rank(tf_config(1)) == 1
    assert process_rank(tf_config(1, chief=1)) == 2


def test_a_slurm_job_step_of_several_tasks_is_a_cluster():
    env = {"SLURM_STEP_ID": "0", "SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
    assert cluster_source(env) == "slurm" and process_rank(env) == 3
    assert cluster_source({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) is None  # no srun


def test_mpirun_without_a_cluster_description_is_refused_with_the_launches():
    with pytest.raises(ClusterError, match="mpirun .Open MPI. with 4 processes.*--workers N"):
        cluster_source({"OMPI_COMM_WORLD_SIZE": "4"})
    assert cluster_source({"OMPI_COMM_WORLD_SIZE": "1"}) is None


def test_thread_counts_prefer_dp_then_tf_variables():
    assert thread_counts({}) == (0, 0)
    assert thread_counts({"DP_INTRA_OP_PARALLELISM_THREADS": "3",
                          "TF_INTRA_OP_PARALLELISM_THREADS": "5",
                          "TF_INTER_OP_PARALLELISM_THREADS": "2"}) == (3, 2)


def test_launcher_gives_each_worker_its_task_and_thread_share():
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    assert len(set(addresses)) == 2
    env = worker_environment(1, addresses, 3, {"OMP_NUM_THREADS": "7"})
    assert json.loads(env["TF_CONFIG"]) == {"cluster": {"worker": addresses},
                                            "task": {"type": "worker", "index": 1}}
    assert env["OMP_NUM_THREADS"] == "7" and env["DP_INTRA_OP_PARALLELISM_THREADS"] == "3"
    assert process_rank(env) == 1


def test_workers_option_is_removed_from_the_worker_command_line():
    assert without_workers_option(["train", "--workers", "2", "in.json", "--workers=3"]) == [
        "train", "in.json"]
