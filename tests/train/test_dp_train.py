"""`dp train` end to end on small models: lcurve and checkpoints, --restart reproducing the
uninterrupted run, SIGINT or SIGTERM leaving a checkpoint that --restart accepts, bad data
refused with the file named, and the water example."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dp_command import run_dp
from shared_paths import WATER

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/water"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def small_input(numb_steps=20, disp_freq=5, save_freq=10, systems=None):
    script = json.loads((EXAMPLE / "se_e2_a_tebd/input.json").read_text())
    model = script["model"]
    model["descriptor"].update(neuron=[8, 16], axis_neuron=4)
    model["fitting_net"]["neuron"] = [32, 32]
    training = script["training"]
    training.update(numb_steps=numb_steps, disp_freq=disp_freq, save_freq=save_freq)
    if systems is not None:
        training["training_data"]["systems"] = systems
    return script


def workdir(tmp_path, script, data=WATER):
    (tmp_path / "data").symlink_to(data)
    run = tmp_path / "se"
    run.mkdir()
    (run / "input.json").write_text(json.dumps(script))
    return run


def dp_train(cwd, *args, timeout=600):
    """`dp train input.json ARGS` in cwd (in this process: tests/dp_command.py)."""
    return run_dp(cwd, "train", "input.json", *args, timeout=timeout)


def rows(lcurve):
    return [line for line in Path(lcurve).read_text().splitlines() if not line.startswith("#")]


@pytest.mark.slow
def test_training_writes_lcurve_checkpoints_and_out_json(tmp_path):
    run = workdir(tmp_path, small_input())
    result = dp_train(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.split()[0] for r in rows(run / "lcurve.out")] == ["0", "5", "10", "15", "20"]
    assert (run / "model.ckpt-10.index").exists() and (run / "model.ckpt-20.index").exists()
    assert (run / "model.ckpt.index").resolve().name == "model.ckpt-20.index"
    assert json.loads((run / "out.json").read_text())["model"]["descriptor"]["type"] == "se_e2_a"
    assert "steps/s, ETA" in result.stderr and "finished training" in result.stderr


@pytest.mark.slow
def test_restart_reproduces_the_uninterrupted_lcurve(tmp_path):
    run = workdir(tmp_path, small_input())
    assert dp_train(run).returncode == 0
    full = rows(run / "lcurve.out")
    again = tmp_path / "again"
    again.mkdir()
    for f in run.glob("model.ckpt-10.*"):
        shutil.copy(f, again)
    shutil.copy(run / "input.json", again)
    result = dp_train(again, "--restart", "model.ckpt-10")
    assert result.returncode == 0, result.stderr[-3000:]
    restarted = rows(again / "lcurve.out")
    # the restart step's row, on the same validation batches (its training columns are of the
    # batch the restarted run trains on next), then the same rows
    assert restarted[0].split()[0] == "10"
    assert restarted[0].split()[1::2] == full[2].split()[1::2]
    assert restarted[1:] == full[3:]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_a_checkpoint_that_restart_accepts(tmp_path, signum):
    run = workdir(tmp_path, small_input(numb_steps=100000, disp_freq=10, save_freq=100000))
    proc = subprocess.Popen([sys.executable, "-m", "deepmd_tebd.cli", "train", "input.json"],
                            cwd=run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "lcurve.out").exists() or \
            len(rows(run / "lcurve.out")) < 2:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "--restart model.ckpt" in err
    stopped_at = int((run / "model.ckpt.index").resolve().name.split("-")[1].split(".")[0])
    assert stopped_at > 0
    script = json.loads((run / "input.json").read_text())
    script["training"]["numb_steps"] = stopped_at + 10
    (run / "input.json").write_text(json.dumps(script))
    result = dp_train(run, "--restart", "model.ckpt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"restart from checkpoint model.ckpt at step {stopped_at}" in result.stderr


def broken_copy(tmp_path, breaker):
    data = tmp_path / "broken"
    shutil.copytree(WATER, data)
    breaker(data / "data_0" / "set.000")
    return data


@pytest.mark.slow
@pytest.mark.parametrize("breaker,fragment", [
    (lambda s: (s / "force.npy").unlink(), "force.npy"),
    (lambda s: np.save(s / "coord.npy", np.load(s / "coord.npy")[:, :-3]), "coord.npy"),
    (lambda s: np.save(s / "energy.npy", np.where(np.arange(len(np.load(s / "energy.npy"))) == 3,
                                                  np.nan, np.load(s / "energy.npy"))),
     "energy.npy"),
], ids=["missing_force", "coord_wrong_shape", "nan_energy"])
def test_bad_data_gets_one_clear_error_naming_the_file(tmp_path, breaker, fragment):
    data = broken_copy(tmp_path, breaker)
    run = workdir(tmp_path, small_input(numb_steps=2, disp_freq=1), data=data)
    result = dp_train(run)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr and "data_0" in result.stderr


@pytest.mark.slow
def test_water_example_trains_from_a_copy(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "water")
    run = tmp_path / "water/se_e2_a_tebd"
    script = json.loads((run / "input.json").read_text())
    script["training"].update(numb_steps=4, disp_freq=2, save_freq=4)
    (run / "input.json").write_text(json.dumps(script))
    result = dp_train(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(rows(run / "lcurve.out")) == 3 and (run / "model.ckpt-4.index").exists()


@pytest.mark.slow
def test_tensorboard_logs_written_when_asked(tmp_path):
    script = small_input(numb_steps=4, disp_freq=2, save_freq=4)
    script["training"].update(tensorboard=True, tensorboard_log_dir="tb", tensorboard_freq=2)
    run = workdir(tmp_path, script)
    result = dp_train(run)
    assert result.returncode == 0, result.stderr[-3000:]
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_tensorboard_without_its_package_is_an_input_error_naming_the_key(tmp_path, monkeypatch):
    from deepmd_tebd.config.errors import ConfigError
    from deepmd_tebd.entrypoints import train

    script = small_input()
    script["training"]["tensorboard"] = True
    run = workdir(tmp_path, script)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    monkeypatch.chdir(run)
    with pytest.raises(ConfigError, match=r"input\.json: training/tensorboard: true, but the "
                                          r"tensorboard package is not installed"):
        train.run("input.json")
    assert not (run / "out.json").exists()
