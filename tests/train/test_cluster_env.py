"""What the environment says about parallel training (train/cluster_env.py), the thread settings
(threads.py) and the launcher's worker environments (train/launcher.py), without TensorFlow."""
import json

import pytest

from deepmd_tebd.threads import thread_counts
from deepmd_tebd.train.cluster_env import (ClusterError, cluster_source, gpu_of_worker,
                                           local_rank, process_rank)
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


def test_each_worker_of_a_host_takes_the_gpu_of_its_local_rank():
    two_hosts = {"chief": ["a:1"], "worker": ["a:2", "b:1", "b:2", "a:3"]}

    def env(job, index):
        return {"TF_CONFIG": json.dumps({"cluster": two_hosts,
                                         "task": {"type": job, "index": index}})}

    assert [local_rank(env("chief", 0))] + [local_rank(env("worker", i)) for i in range(4)] == \
        [0, 1, 0, 1, 2]
    assert gpu_of_worker(env("worker", 3), gpus=4) == 2
    assert [gpu_of_worker(tf_config(i, workers=3), gpus=3) for i in range(3)] == [0, 1, 2]
    assert gpu_of_worker(tf_config(1), gpus=0) is None  # CPU only: nothing to choose
    slurm = {"SLURM_STEP_ID": "0", "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    assert local_rank(slurm) == 1 and local_rank({}) == 0


def test_more_workers_on_a_host_than_gpus_is_refused():
    with pytest.raises(ClusterError, match="worker 3 of this host sees 2 GPU.*one worker per GPU"):
        gpu_of_worker(tf_config(2, workers=3), gpus=2)


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
