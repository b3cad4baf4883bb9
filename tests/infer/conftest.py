"""Frozen models for the inference tests, made once per session: ours trained by `dp train`
(the upstream se_e2_a_tebd water input, 100 steps) and frozen by `dp freeze`; DeePMD-kit's trained
and frozen from the same input by DeePMD-kit 3.2 (in the oracle venv); a small model without
type embedding (and each side's `dp compress` of it); both sides' se_a_ebd_v2 models of
DeePMD-kit's current example (20 steps), and ours with smooth_type_embedding (100 steps)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_paths import INPUTS, WATER

from reference.deepmd_oracle import _clean_env, require_oracle

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
TRAIN_STEPS = 100


def water_input(name="water_se_e2_a_tebd.json", numb_steps=TRAIN_STEPS, small=False):
    script = json.loads((INPUTS / name).read_text())
    training = script["training"]
    training.update(numb_steps=numb_steps, disp_freq=max(1, numb_steps // 2),
                    save_freq=max(1, numb_steps))
    training["training_data"]["systems"] = [f"../data/data_{i}" for i in range(3)]
    training["validation_data"]["systems"] = ["../data/data_3"]
    script["learning_rate"]["decay_steps"] = 20
    if small:
        script["model"]["descriptor"].update(neuron=[8, 16], axis_neuron=4)
        script["model"]["fitting_net"]["neuron"] = [32, 32]
    return script


def make_workdir(root: Path, script: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").symlink_to(WATER)
    run = root / "run"
    run.mkdir()
    (run / "input.json").write_text(json.dumps(script, indent=1))
    return run


def dp(cwd, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "deepmd_tebd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=ENV)


def oracle_dp(cwd, *args, timeout=1200):
    python = require_oracle()
    return subprocess.run([str(Path(python).parent / "dp"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=_clean_env({"TF_CPP_MIN_LOG_LEVEL": "3"}))


def _frozen(run: Path, runner, train_args, freeze_args) -> Path:
    result = runner(run, *train_args)
    assert result.returncode == 0, result.stderr[-3000:]
    result = runner(run, *freeze_args)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def ours_run(tmp_path_factory) -> Path:
    """The folder where our model was trained; `graph.pb` in it is the frozen model."""
    run = make_workdir(tmp_path_factory.mktemp("ours"), water_input())
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "graph.pb"])


@pytest.fixture(scope="session")
def ours_graph(ours_run) -> Path:
    return ours_run / "graph.pb"


@pytest.fixture(scope="session")
def theirs_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen model of the same input (TensorFlow backend)."""
    require_oracle()
    run = make_workdir(tmp_path_factory.mktemp("theirs"), water_input(numb_steps=20))
    return _frozen(run, oracle_dp, ["--tf", "train", "input.json"],
                   ["--tf", "freeze", "-o", "theirs.pb"]) / "theirs.pb"


@pytest.fixture(scope="session")
def plain_graph(tmp_path_factory) -> Path:
    """Our frozen se_e2_a model without type embedding (small nets, 2 steps)."""
    run = make_workdir(tmp_path_factory.mktemp("plain"),
                       water_input("water_se_e2_a.json", numb_steps=2, small=True))
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "plain.pb"]) / "plain.pb"


@pytest.fixture(scope="session")
def theirs_plain_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen model of the same small input without type embedding."""
    require_oracle()
    run = make_workdir(tmp_path_factory.mktemp("theirs_plain"),
                       water_input("water_se_e2_a.json", numb_steps=2, small=True))
    return _frozen(run, oracle_dp, ["--tf", "train", "input.json"],
                   ["--tf", "freeze", "-o", "theirs_plain.pb"]) / "theirs_plain.pb"


@pytest.fixture(scope="session")
def ours_compressed_graph(plain_graph) -> Path:
    """Our `dp compress` of our small model without type embedding."""
    result = dp(plain_graph.parent, "compress", "-i", plain_graph.name, "-o", "compressed.pb")
    assert result.returncode == 0, result.stderr[-3000:]
    return plain_graph.parent / "compressed.pb"


@pytest.fixture(scope="session")
def theirs_compressed_graph(theirs_plain_graph) -> Path:
    """DeePMD-kit 3.2's `dp compress` of its small model without type embedding."""
    result = oracle_dp(theirs_plain_graph.parent, "--tf", "compress", "-i",
                       theirs_plain_graph.name, "-o", "theirs_compressed.pb")
    assert result.returncode == 0, result.stderr[-3000:]
    return theirs_plain_graph.parent / "theirs_compressed.pb"


EBD_V2_INPUT = "water_se_a_ebd_v2.json"  # DeePMD-kit's current type-embedding example
EBD_V2_STEPS = 20


@pytest.fixture(scope="session")
def ours_ebd_v2_graph(tmp_path_factory) -> Path:
    """Our se_a_ebd_v2 model of DeePMD-kit's example (20 steps), frozen by `dp freeze`."""
    run = make_workdir(tmp_path_factory.mktemp("ours_ebd_v2"),
                       water_input(EBD_V2_INPUT, numb_steps=EBD_V2_STEPS))
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "v2.pb"]) / "v2.pb"


@pytest.fixture(scope="session")
def ours_ebd_v2_smooth_graph(tmp_path_factory) -> Path:
    """Our se_a_ebd_v2 model with smooth_type_embedding true (100 steps), frozen."""
    script = water_input(EBD_V2_INPUT)
    script["model"]["descriptor"]["smooth_type_embedding"] = True
    run = make_workdir(tmp_path_factory.mktemp("ours_ebd_v2_smooth"), script)
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "v2s.pb"]) / "v2s.pb"


@pytest.fixture(scope="session")
def theirs_ebd_v2_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen se_a_ebd_v2 model of the same input (TensorFlow backend)."""
    require_oracle()
    run = make_workdir(tmp_path_factory.mktemp("theirs_ebd_v2"),
                       water_input(EBD_V2_INPUT, numb_steps=EBD_V2_STEPS))
    return _frozen(run, oracle_dp, ["--tf", "train", "input.json"],
                   ["--tf", "freeze", "-o", "theirs_v2.pb"]) / "theirs_v2.pb"


def water_frames(nframes=4, system="data_3"):
    """coords [nf, 192, 3], cells [nf, 9], types [192] of the first frames of a water system."""
    base = WATER / system / "set.000"
    coords = np.load(base / "coord.npy")[:nframes].reshape(nframes, -1, 3)
    cells = np.load(base / "box.npy")[:nframes]
    types = np.loadtxt(WATER / system / "type.raw", dtype=int)
    return coords, cells, types


def one_frame_system(root, source=WATER / "data_3"):
    """A copy of the first frame of a water system: every batch of size 1 is that frame."""
    root.mkdir(parents=True)
    for name in ("type.raw", "type_map.raw"):
        shutil.copy(source / name, root / name)
    (root / "set.000").mkdir()
    for array in (source / "set.000").glob("*.npy"):
        np.save(root / "set.000" / array.name, np.load(array)[:1])
    return root


def deepmd_eval(model: Path, coords, cells, types, tmp: Path) -> dict:
    """DeePMD-kit 3.2's DeepPot on the frames, in the oracle venv."""
    python = require_oracle()
    arrays = {"coords": coords, "types": types}
    if cells is not None:
        arrays["cells"] = cells
    np.savez(tmp / "in.npz", **arrays)
    runner = Path(__file__).resolve().parents[1] / "reference" / "deepmd_infer_runner.py"
    result = subprocess.run([python, str(runner), str(model), str(tmp / "in.npz"),
                             str(tmp / "out.npz")], capture_output=True, text=True,
                            timeout=600, env=_clean_env({"TF_CPP_MIN_LOG_LEVEL": "3"}))
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp / "out.npz") as out:
        return {k: out[k] for k in out.files}
