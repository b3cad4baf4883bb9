"""Data-parallel training (train/distributed.py) on loopback: two workers equal one process
trained on the union of their batches, the chief alone writes the outputs, and a cluster that
cannot be formed (a peer missing, a port in use, a bad TF_CONFIG) or an MPI launch fail
clearly, in bounded time, writing nothing.

Every process is started here and killed by pid in a finally."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from shared_paths import needs_water
from test_dp_train import rows, small_input, workdir

from deepmd_tebd.train.launcher import free_ports, worker_environment

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
PER_FRAME = ("coord", "box", "type", "energy", "force", "virial", "atom_ener", "atom_pref")
STEPS = 20


def start_workers(count, argv_of_rank, cwd, env=ENV):
    """`count` processes with the TF_CONFIG of a loopback cluster; argv_of_rank(rank) -> argv."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    return [subprocess.Popen(argv_of_rank(rank), cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=worker_environment(rank, addresses, 1, env))
            for rank in range(count)]


def finish(procs, timeout):
    """(returncodes, stderrs) once all have exited within `timeout` s (AssertionError if not)."""
    deadline = time.monotonic() + timeout
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=max(0.1, deadline - time.monotonic()))[1])
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker pid {proc.pid} still running after {timeout} s")
    return [p.returncode for p in procs], outputs


def kill_all(procs):
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def dp_train_argv(*args):
    return [sys.executable, "-m", "deepmd_tebd.cli", "train", "input.json", *args]


def one_set_of_outputs(*steps):
    """The files of one run's directory: input, out.json, lcurve.out, checkpoints of `steps`."""
    names = ["input.json", "out.json", "lcurve.out", "checkpoint"]
    for prefix in ["model.ckpt"] + [f"model.ckpt-{step}" for step in steps]:
        names += [f"{prefix}.index", f"{prefix}.data-00000-of-00001"]
    return sorted(names)


def _union_batch(w0, w1, step, keys):
    batch = {}
    for key in keys:
        a, b = w0[f"batch_{step}_{key}"], w1[f"batch_{step}_{key}"]
        if key in PER_FRAME:
            batch[key] = np.concatenate([a, b])
        else:
            np.testing.assert_array_equal(a, b)
            batch[key] = a
    return batch


@needs_water
def test_two_workers_equal_one_process_trained_on_the_union_of_their_batches(tmp_path,
                                                                           monkeypatch):
    script = small_input(numb_steps=STEPS)
    script["learning_rate"]["scale_by_worker"] = "none"
    run = workdir(tmp_path, script)
    procs = start_workers(2, lambda r: [sys.executable, str(WORKER), "input.json", f"w{r}.npz",
                                        str(STEPS)], run)
    try:
        codes, errors = finish(procs, 400)
    finally:
        kill_all(procs)
    assert codes == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    w0, w1 = np.load(run / "w0.npz"), np.load(run / "w1.npz")
    nweights = len([k for k in w0.files if k.startswith("weights_0_")])
    for step in range(STEPS):  # the two workers hold the same weights after every step
        for i in range(nweights):
            np.testing.assert_array_equal(w0[f"weights_{step}_{i}"], w1[f"weights_{step}_{i}"])
    # they trained on different frames (data RNG keyed [rank, training.seed])
    assert not np.array_equal(w0["batch_0_coord"], w1["batch_0_coord"])

    from deepmd_tebd.config import load_settings
    from deepmd_tebd.data.script_check import check_against_data
    from deepmd_tebd.train.build import build_trainer

    monkeypatch.chdir(run)
    config, min_dist = check_against_data(load_settings("input.json"), "input.json", True)
    trainer = build_trainer(config, min_nbor_dist=min_dist)
    for i, variable in enumerate(trainer.model.variables):  # the chief's start
        variable.assign(w0[f"start_{i}"])
    keys = sorted({k.split("_", 2)[2] for k in w0.files if k.startswith("batch_0_")})
    for step in range(STEPS):
        trainer.train_step(_union_batch(w0, w1, step, keys))
    for i, variable in enumerate(trainer.model.trainable_variables):
        np.testing.assert_allclose(np.array(variable), w0[f"weights_{STEPS - 1}_{i}"],
                                   rtol=0, atol=1e-10)


@needs_water
def test_two_workers_write_one_lcurve_one_out_json_one_checkpoint_series(tmp_path):
    run = workdir(tmp_path, small_input(numb_steps=6, disp_freq=2, save_freq=4))
    proc = subprocess.Popen(dp_train_argv("--workers", "2"), cwd=run, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        _, err = proc.communicate(timeout=400)
    finally:
        kill_all([proc])
    assert proc.returncode == 0, err[-3000:]
    assert [r.split()[0] for r in rows(run / "lcurve.out")] == ["0", "2", "4", "6"]
    assert sorted(p.name for p in run.iterdir()) == one_set_of_outputs(4, 6)
    assert err.count("finished training") == 1 and err.count("step 6/6") == 1
    assert "world size 2, my rank 0" in err


def consecutive_free_ports(count):
    """A first port p with p .. p + count - 1 free on 127.0.0.1 now."""
    for _ in range(100):
        first = free_ports(1)[0]
        if first + count > 65535:
            continue
        try:
            taken = []
            for port in range(first, first + count):
                s = socket.socket()
                taken.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    raise AssertionError("no consecutive free ports")


@needs_water
def test_a_slurm_job_step_trains_as_one_cluster_on_cpu_nodes(tmp_path):
    """`srun -n 2 dp train` on one CPU node, as Slurm sets the environment of its tasks: the
    two tasks form one cluster (SlurmClusterResolver, no nvidia-smi needed) and the chief alone
    writes."""
    run = workdir(tmp_path, small_input(numb_steps=4, disp_freq=2, save_freq=4))
    slurm = dict(SLURM_JOB_ID="7", SLURM_STEP_ID="0", SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2",
                 SLURM_STEP_NODELIST="localhost", SLURM_STEP_TASKS_PER_NODE="2",
                 DP_SLURM_PORT_BASE=str(consecutive_free_ports(2)))
    env = {k: v for k, v in ENV.items() if k not in ("TF_CONFIG", "CUDA_VISIBLE_DEVICES")}
    procs = [subprocess.Popen(dp_train_argv(), cwd=run, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(env, **slurm, SLURM_PROCID=str(rank),
                                       SLURM_LOCALID=str(rank), OMP_NUM_THREADS="1"))
             for rank in range(2)]
    try:
        codes, errs = finish(procs, timeout=400)
    finally:
        kill_all(procs)
    assert codes == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    assert "world size 2, my rank 0" in errs[0]  # the other workers do not log
    assert [r.split()[0] for r in rows(run / "lcurve.out")] == ["0", "2", "4"]
    assert errs[0].count("finished training") == 1 and "finished training" not in errs[1]
    assert sorted(p.name for p in run.iterdir()) == sorted([
        "input.json", "out.json", "lcurve.out", "checkpoint", "model.ckpt.index",
        "model.ckpt.data-00000-of-00001", "model.ckpt-4.index",
        "model.ckpt-4.data-00000-of-00001"])


@needs_water
@pytest.mark.parametrize("lonely_rank", [0, 1])
def test_unreachable_peer_fails_clearly_in_bounded_time_writing_nothing(tmp_path, lonely_rank):
    run = workdir(tmp_path, small_input())
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    env = worker_environment(lonely_rank, addresses, 1, dict(ENV, DP_CLUSTER_TIMEOUT="8"))
    t0 = time.monotonic()
    proc = subprocess.Popen(dp_train_argv(), cwd=run, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        kill_all([proc])
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1  # the waiting leader too: its watchdog ends it with status 1
    assert "could not be formed within 8 s" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == ["input.json"]


@needs_water
def test_a_port_in_use_fails_clearly_in_bounded_time_writing_nothing(tmp_path):
    run = workdir(tmp_path, small_input())
    ports = free_ports(2)
    addresses = [f"127.0.0.1:{port}" for port in ports]
    env = dict(ENV, DP_CLUSTER_TIMEOUT="8")
    with socket.socket() as taken:  # the chief's port, held by another program
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen(1)
        t0 = time.monotonic()
        procs = [subprocess.Popen(dp_train_argv(), cwd=run, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=worker_environment(rank, addresses, 1, env))
                 for rank in range(2)]
        try:
            codes, errs = finish(procs, timeout=90)
        finally:
            kill_all(procs)
    assert time.monotonic() - t0 < 60
    assert all(code != 0 for code in codes)  # 1, or SIGKILL by the watchdog of the leader
    assert "Could not start gRPC server" in errs[0] and "its port free" in errs[0]
    assert "could not be formed within 8 s" in errs[1]
    assert not any("Traceback" in err for err in errs)
    assert sorted(p.name for p in run.iterdir()) == ["input.json"]


@pytest.mark.parametrize("tf_config, expected", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                 "task": {"type": "worker", "index": 2}}), "task/index 2"),
    (json.dumps({"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker"}}),
     "cluster/worker must be a list"),
])
def test_bad_tf_config_is_refused_writing_nothing(tmp_path, tf_config, expected):
    (tmp_path / "input.json").write_text(json.dumps(small_input()))
    result = subprocess.run(dp_train_argv(), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=dict(ENV, TF_CONFIG=tf_config))
    assert result.returncode == 1 and expected in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.json"]


@pytest.mark.parametrize("variable", ["OMPI_COMM_WORLD_SIZE", "HOROVOD_SIZE", "PMI_SIZE"])
def test_mpi_launch_without_cluster_description_says_how_to_launch(tmp_path, variable):
    (tmp_path / "input.json").write_text(json.dumps(small_input()))
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    result = subprocess.run(dp_train_argv(), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=dict(env, **{variable: "2"}))
    assert result.returncode == 1
    assert "does not use MPI or Horovod" in result.stderr and "--workers N" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.json"]


@needs_water
def test_early_stopping_is_refused_for_several_workers_writing_nothing(tmp_path):
    script = small_input()
    script["training"]["whole_validation"] = {"freq": 1, "early_stopping": {"patience": 2}}
    run = workdir(tmp_path, script)
    procs = start_workers(2, lambda r: dp_train_argv(), run)
    try:
        codes, errors = finish(procs, 120)
    finally:
        kill_all(procs)
    assert codes == [1, 1], errors[0][-3000:]
    for err in errors:
        assert "training/whole_validation/early_stopping" in err, err[-3000:]
        assert "not supported in a data-parallel run" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == ["input.json"]
