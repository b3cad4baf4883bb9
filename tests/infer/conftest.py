"""Frozen models for the inference tests, made once per session (shared by the test processes,
tests/shared_build.py): ours trained by `dp train` (the upstream se_e2_a_tebd water input, 100
steps) and frozen by `dp freeze`; DeePMD-kit's trained and frozen from the same input by
DeePMD-kit 3.2 (in the oracle venv); a small model without type embedding (and each side's
`dp compress` of it); both sides' se_a_ebd_v2 models of DeePMD-kit's current example (20 steps),
and ours with smooth_type_embedding (small nets, 100 steps); a small model of the
type-embedding input for MD runs. Our `dp` runs in the test process
(tests/dp_command.py), DeePMD-kit's in its venv."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from dp_command import run_dp
from shared_build import built_once
from shared_paths import INPUTS, WATER

from reference.deepmd_oracle import _clean_env, require_oracle, run_oracle

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


def tiny_input(script, numb_steps=2):
    """`script` made small for tests of code paths: nets of a few neurons, `numb_steps` steps
    on one water system, every step logged and saved, one validation batch."""
    script["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2)
    script["model"]["fitting_net"]["neuron"] = [8]
    training = script["training"]
    training.update(numb_steps=numb_steps, disp_freq=1, save_freq=1)
    training["training_data"]["systems"] = ["../data/data_0"]
    training["validation_data"].update(systems=["../data/data_3"], numb_btch=1)
    return script


def small_dpa1_input(name: str, steps: int = 4) -> dict:
    """DeePMD-kit's example with small nets, a few steps on one system."""
    script = json.loads((INPUTS / name).read_text())
    script["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=4, attn=8)
    script["model"]["fitting_net"]["neuron"] = [16, 16]
    training = script["training"]
    training.update(numb_steps=steps, disp_freq=steps, save_freq=steps)
    training["training_data"]["systems"] = ["../data/data_0"]
    training["validation_data"].update(systems=["../data/data_3"], numb_btch=1)
    return script


def make_workdir(root: Path, script: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").symlink_to(WATER)
    run = root / "run"
    run.mkdir()
    (run / "input.json").write_text(json.dumps(script, indent=1))
    return run


def dp(cwd, *args, timeout=900):
    """Our `dp ARGS` in cwd (in this process: tests/dp_command.py)."""
    return run_dp(cwd, *args, timeout=timeout)


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


def _shared_run(tmp_path_factory, name: str, script: dict, runner, train_args,
                freeze_args) -> Path:
    """The run folder of `script` trained and frozen by `runner` once per session."""
    def build(folder):
        _frozen(make_workdir(folder, script), runner, train_args, freeze_args)

    return built_once(tmp_path_factory, name, build) / "run"


@pytest.fixture(scope="session")
def ours_run(tmp_path_factory) -> Path:
    """The folder where our model was trained; `graph.pb` in it is the frozen model."""
    return _shared_run(tmp_path_factory, "ours", water_input(), dp, ["train", "input.json"],
                       ["freeze", "-o", "graph.pb"])


@pytest.fixture(scope="session")
def ours_graph(ours_run) -> Path:
    return ours_run / "graph.pb"


@pytest.fixture(scope="session")
def small_tebd_graph(tmp_path_factory) -> Path:
    """Our frozen model of the same input with small nets (100 steps): MD runs of many steps."""
    return _shared_run(tmp_path_factory, "small_tebd", water_input(small=True), dp,
                       ["train", "input.json"], ["freeze", "-o", "small.pb"]) / "small.pb"


@pytest.fixture(scope="session")
def theirs_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen model of the same input (TensorFlow backend)."""
    require_oracle()
    return _shared_run(tmp_path_factory, "theirs", water_input(numb_steps=20), oracle_dp,
                       ["--tf", "train", "input.json"],
                       ["--tf", "freeze", "-o", "theirs.pb"]) / "theirs.pb"


@pytest.fixture(scope="session")
def plain_graph(tmp_path_factory) -> Path:
    """Our frozen se_e2_a model without type embedding (small nets, 2 steps)."""
    return _shared_run(tmp_path_factory, "plain",
                       water_input("water_se_e2_a.json", numb_steps=2, small=True), dp,
                       ["train", "input.json"], ["freeze", "-o", "plain.pb"]) / "plain.pb"


@pytest.fixture(scope="session")
def theirs_plain_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen model of the same small input without type embedding."""
    require_oracle()
    return _shared_run(tmp_path_factory, "theirs_plain",
                       water_input("water_se_e2_a.json", numb_steps=2, small=True), oracle_dp,
                       ["--tf", "train", "input.json"],
                       ["--tf", "freeze", "-o", "theirs_plain.pb"]) / "theirs_plain.pb"


def _compressed(tmp_path_factory, name: str, graph: Path, runner, prefix, out: str) -> Path:
    """`dp compress` of `graph` (written beside it) once per session."""
    def build(_):
        result = runner(graph.parent, *prefix, "compress", "-i", graph.name, "-o", out)
        assert result.returncode == 0, result.stderr[-3000:]

    built_once(tmp_path_factory, name, build)
    return graph.parent / out


@pytest.fixture(scope="session")
def ours_compressed_graph(tmp_path_factory, plain_graph) -> Path:
    """Our `dp compress` of our small model without type embedding."""
    return _compressed(tmp_path_factory, "ours_compressed", plain_graph, dp, (),
                       "compressed.pb")


@pytest.fixture(scope="session")
def theirs_compressed_graph(tmp_path_factory, theirs_plain_graph) -> Path:
    """DeePMD-kit 3.2's `dp compress` of its small model without type embedding."""
    return _compressed(tmp_path_factory, "theirs_compressed", theirs_plain_graph, oracle_dp,
                       ("--tf",), "theirs_compressed.pb")


EBD_V2_INPUT = "water_se_a_ebd_v2.json"  # DeePMD-kit's current type-embedding example
EBD_V2_STEPS = 20


@pytest.fixture(scope="session")
def ours_ebd_v2_graph(tmp_path_factory) -> Path:
    """Our se_a_ebd_v2 model of DeePMD-kit's example (20 steps), frozen by `dp freeze`."""
    return _shared_run(tmp_path_factory, "ours_ebd_v2",
                       water_input(EBD_V2_INPUT, numb_steps=EBD_V2_STEPS), dp,
                       ["train", "input.json"], ["freeze", "-o", "v2.pb"]) / "v2.pb"


@pytest.fixture(scope="session")
def ours_ebd_v2_smooth_graph(tmp_path_factory) -> Path:
    """Our se_a_ebd_v2 model with smooth_type_embedding true (small nets, 100 steps), frozen."""
    script = water_input(EBD_V2_INPUT, small=True)
    script["model"]["descriptor"]["smooth_type_embedding"] = True
    return _shared_run(tmp_path_factory, "ours_ebd_v2_smooth", script, dp,
                       ["train", "input.json"], ["freeze", "-o", "v2s.pb"]) / "v2s.pb"


@pytest.fixture(scope="session")
def theirs_ebd_v2_graph(tmp_path_factory) -> Path:
    """DeePMD-kit 3.2's frozen se_a_ebd_v2 model of the same input (TensorFlow backend)."""
    require_oracle()
    return _shared_run(tmp_path_factory, "theirs_ebd_v2",
                       water_input(EBD_V2_INPUT, numb_steps=EBD_V2_STEPS), oracle_dp,
                       ["--tf", "train", "input.json"],
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
    arrays = {"coords": coords, "types": types}
    if cells is not None:
        arrays["cells"] = cells
    np.savez(tmp / "in.npz", **arrays)
    runner = Path(__file__).resolve().parents[1] / "reference" / "deepmd_infer_runner.py"
    result = run_oracle([runner, model, tmp / "in.npz", tmp / "out.npz"], tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp / "out.npz") as out:
        return {k: out[k] for k in out.files}


def assert_runs_in_deepmd_kit_and_lammps(graph: Path, tmp: Path) -> None:
    """`graph` in DeePMD-kit 3.2's DeepPot on two water frames, and LAMMPS step 0 on the first,
    give our DeepPot's energies, forces and virials (1e-10 relative to the largest)."""
    from reference.lammps import run_lammps

    from deepmd_tebd.infer import DeepPot

    coords, cells, types = water_frames(2)
    e, f, v = DeepPot(graph).eval(coords, cells, types)[:3]
    theirs = deepmd_eval(graph, coords, cells, types, tmp)
    np.testing.assert_allclose(theirs["energy"].reshape(e.shape), e, rtol=1e-10)
    np.testing.assert_allclose(theirs["force"].reshape(f.shape), f, rtol=0,
                               atol=1e-10 * np.abs(f).max())
    np.testing.assert_allclose(theirs["virial"].reshape(v.shape), v, rtol=0,
                               atol=1e-10 * np.abs(v).max())
    md = run_lammps(tmp / "lammps", graph, coords[0], cells[0], types, ["O", "H"])
    assert md["energy"] == pytest.approx(e[0, 0], rel=1e-10)
    assert np.abs(md["forces"] - f[0]).max() <= 1e-10 * np.abs(f[0]).max()
    assert np.abs(md["virial"] - v[0]).max() <= 1e-10 * np.abs(v[0]).max()


# DeePMD-kit 3.2's normalisation of the scripts at the paths in argv[1] (JSON list), as its
# out.json writes them: {path: script} on stdout (for reference.deepmd_oracle.run_oracle_script)
DEEPMD_NORMALISE = """
import json, sys
from deepmd.tf.utils.argcheck import normalize
from deepmd.tf.utils.compat import update_deepmd_input
paths = json.loads(sys.argv[1])
print(json.dumps({p: normalize(update_deepmd_input(json.load(open(p)), warning=False))
                  for p in paths}))
"""


def leaves(node, path=()):
    """(key path "a/b/c", value) of every leaf of a nested dict."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, path + (key,))
    else:
        yield "/".join(path), node
