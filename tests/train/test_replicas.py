"""Several replicas in one process (train/replicas.py: MirroredStrategy; here over logical CPU
devices, $DP_CPU_REPLICAS, the path a process with several GPUs takes): two replicas equal one
process trained on the union of their batches, `dp train` writes one set of outputs and
--restart continues with another number of replicas, a bad replica count is refused.

Every process is started here with a time limit."""
import json
import subprocess
import sys

import numpy as np
import pytest
from shared_paths import needs_water
from test_distributed import (ENV, STEPS, WORKER, _union_batch, dp_train_argv,
                              one_set_of_outputs)
from test_dp_train import rows, small_input, workdir

pytestmark = pytest.mark.slow


@needs_water
def test_two_replicas_in_one_process_equal_one_process_trained_on_the_union_of_their_batches(
        tmp_path, monkeypatch):
    script = small_input(numb_steps=STEPS)
    script["learning_rate"]["scale_by_worker"] = "none"
    run = workdir(tmp_path, script)
    result = subprocess.run([sys.executable, str(WORKER), "input.json", "w.npz", str(STEPS)],
                            cwd=run, capture_output=True, text=True, timeout=400,
                            env=dict(ENV, DP_CPU_REPLICAS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(run / "w.npz")
    first = {k: saved[k] for k in saved.files if k.startswith("batch_")}
    second = {k.replace("batch1_", "batch_"): saved[k] for k in saved.files
              if k.startswith("batch1_")}
    assert len(second) == len(first) > 0
    # the replicas trained on different frames (data seed training.seed + replica)
    assert not np.array_equal(first["batch_0_coord"], second["batch_0_coord"])

    from deepmd_tebd.config import load_settings
    from deepmd_tebd.data.script_check import check_against_data
    from deepmd_tebd.train.build import build_trainer

    monkeypatch.chdir(run)
    config, min_dist = check_against_data(load_settings("input.json"), "input.json", True)
    trainer = build_trainer(config, min_nbor_dist=min_dist)
    for i, variable in enumerate(trainer.model.variables):
        variable.assign(saved[f"start_{i}"])
    keys = sorted({k.split("_", 2)[2] for k in first if k.startswith("batch_0_")})
    for step in range(STEPS):
        trainer.train_step(_union_batch(first, second, step, keys))
        for i, variable in enumerate(trainer.model.trainable_variables):
            np.testing.assert_allclose(np.array(variable), saved[f"weights_{step}_{i}"],
                                       rtol=0, atol=1e-10, err_msg=f"step {step}")


@needs_water
def test_dp_train_with_two_replicas_writes_one_set_of_outputs_and_restarts_with_one(tmp_path):
    run = workdir(tmp_path, small_input(numb_steps=6, disp_freq=2, save_freq=4))
    two = subprocess.run(dp_train_argv(), cwd=run, capture_output=True, text=True, timeout=400,
                         env=dict(ENV, DP_CPU_REPLICAS="2"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 replicas on /CPU:0, /CPU:1 (MirroredStrategy)" in two.stderr
    assert "scale learning rate by coef: 2.000000 (scale_by_worker linear, 2 replicas)" in (
        two.stderr)
    assert [r.split()[0] for r in rows(run / "lcurve.out")] == ["0", "2", "4", "6"]
    assert sorted(p.name for p in run.iterdir()) == one_set_of_outputs(4, 6)
    assert two.stderr.count("step 6/6") == 1
    script = json.loads((run / "input.json").read_text())
    script["training"]["numb_steps"] = 8
    (run / "input.json").write_text(json.dumps(script))
    one = subprocess.run(dp_train_argv("--restart", "model.ckpt"), cwd=run, capture_output=True,
                         text=True, timeout=400, env=ENV)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "restart from checkpoint model.ckpt at step 6" in one.stderr
    assert "replicas" not in one.stderr
    # the restart row of step 6 again, then step 8
    assert [r.split()[0] for r in rows(run / "lcurve.out")] == ["0", "2", "4", "6", "6", "8"]
    assert np.isfinite([float(x) for x in rows(run / "lcurve.out")[-1].split()]).all()


def test_a_bad_replica_count_is_refused_writing_nothing(tmp_path):
    (tmp_path / "input.json").write_text(json.dumps(small_input()))
    result = subprocess.run(dp_train_argv(), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=dict(ENV, DP_CPU_REPLICAS="two"))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "DP_CPU_REPLICAS='two': expected a positive integer" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.json"]


def test_early_stopping_stops_the_replicas_of_one_process_after_its_patience(tmp_path):
    from test_whole_validation import _rows, _stalled

    run = _stalled(tmp_path, 10)
    result = subprocess.run(dp_train_argv(), cwd=run, capture_output=True, text=True,
                            timeout=400, env=dict(ENV, DP_CPU_REPLICAS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replicas" in result.stderr and "early stopping at step 3" in result.stderr
    assert _rows(run / "valid.out")[1][:, 0].tolist() == [1, 2, 3]
