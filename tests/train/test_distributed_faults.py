"""Faults of a data-parallel run on loopback: SIGTERM to one worker stops every worker after
the same step with a checkpoint that --restart accepts (with 1 or 2 workers); a worker killed
with SIGKILL makes the others stop with a clear error, the last checkpoint intact.

Every process is started here and killed by pid in a finally."""
import json
import os
import signal
import subprocess
import time

import pytest
from shared_paths import needs_water
from test_distributed import ENV, dp_train_argv, finish, kill_all, start_workers
from test_dp_train import rows, small_input, workdir

pytestmark = pytest.mark.slow

LONG = 100000  # steps: the runs below are stopped long before


def wait_for_rows(lcurve, count, procs, timeout=400):
    """Waits until `lcurve` has `count` rows (training is under way) while all procs run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"pid {proc.pid} exited early: {proc.stderr.read()[-3000:]}")
        if lcurve.exists() and len(rows(lcurve)) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{lcurve} has not {count} rows after {timeout} s")


def checkpoint_step(run):
    return int((run / "checkpoint").read_text().split('"')[1].rsplit("-", 1)[1])


@needs_water
@pytest.mark.parametrize("restart_workers", [1, 2])
def test_sigterm_to_one_worker_stops_all_with_a_checkpoint_restart_accepts(tmp_path,
                                                                           restart_workers):
    run = workdir(tmp_path, small_input(numb_steps=LONG, disp_freq=5, save_freq=LONG))
    procs = start_workers(2, lambda rank: dp_train_argv(), run)
    try:
        wait_for_rows(run / "lcurve.out", 2, procs)
        os.kill(procs[1].pid, signal.SIGTERM)
        t0 = time.monotonic()
        codes, errors = finish(procs, 30)
        assert time.monotonic() - t0 < 30
    finally:
        kill_all(procs)
    assert codes == [128 + signal.SIGTERM] * 2, errors[0][-3000:] + errors[1][-3000:]
    assert "continue with: dp train input.json --restart model.ckpt" in errors[0]
    step = checkpoint_step(run)
    assert step >= 5
    script = json.loads((run / "input.json").read_text())
    script["training"]["numb_steps"] = step + 4
    (run / "input.json").write_text(json.dumps(script))
    extra = ["--workers", "2"] if restart_workers == 2 else []
    proc = subprocess.Popen(dp_train_argv("--restart", "model.ckpt", *extra), cwd=run,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        _, err = proc.communicate(timeout=400)
    finally:
        kill_all([proc])
    assert proc.returncode == 0, err[-3000:]
    assert f"restart from checkpoint model.ckpt at step {step}" in err
    assert checkpoint_step(run) == step + 4


@needs_water
@pytest.mark.parametrize("killed", [0, 1])
def test_a_killed_worker_stops_the_other_with_a_clear_error(tmp_path, killed):
    import tensorflow as tf

    run = workdir(tmp_path, small_input(numb_steps=LONG, disp_freq=5, save_freq=5))
    procs = start_workers(2, lambda rank: dp_train_argv(), run)
    survivor = procs[1 - killed]
    try:
        wait_for_rows(run / "lcurve.out", 3, procs)
        os.kill(procs[killed].pid, signal.SIGKILL)
        t0 = time.monotonic()
        codes, errors = finish([survivor], 60)
        assert time.monotonic() - t0 < 60
    finally:
        kill_all(procs)
    assert codes == [1] and "the cluster lost a worker" in errors[0], errors[0][-3000:]
    reader = tf.train.load_checkpoint(str(run / "model.ckpt"))  # the newest checkpoint
    assert reader.get_variable_to_shape_map()
