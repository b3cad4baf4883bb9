"""Each command refuses hostile arguments and paths at its edge, before computing, with exit
status 1 (or argparse's 2), a message naming the file, the option or the key path, no
traceback, and no file written or changed: the defects of the issue "hostile input", one test
each, on a small type-embedding model trained two steps here. The random battery is
tests/test_hostile_battery.py."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from conftest import dp, make_workdir, tiny_input, water_input
from shared_paths import WATER, needs_water

pytestmark = needs_water


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder: the small model trained two steps (checkpoints model.ckpt-1, -2) and frozen
    to graph.pb."""
    run = make_workdir(tmp_path_factory.mktemp("hostile"), tiny_input(water_input()))
    for args in (("train", "input.json"), ("freeze", "-o", "graph.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return run


def _snapshot(folder):
    """{relative path: (mode, bytes)} of every file under `folder`."""
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _copy_run(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    (tmp_path / "data").symlink_to(WATER)
    return run


def _refused(result, status=1, *fragments):
    assert result.returncode == status, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])


# -- silent wrong results -------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (("compress", "-i", "graph.pb", "-o", "c.pb", "-e", "-5"), "-e/--extrapolate"),
    (("compress", "-i", "graph.pb", "-o", "c.pb", "-s", "0"), "-s/--step"),
    (("compress", "-i", "graph.pb", "-o", "c.pb", "-s", "-0.01"), "-s/--step"),
    (("compress", "-i", "graph.pb", "-o", "c.pb", "-s", "nan"), "-s/--step"),
    (("compress", "-i", "graph.pb", "-o", "c.pb", "-f", "0"), "-f/--frequency"),
    (("train", "input.json", "--workers", "0"), "--workers"),
    (("train", "input.json", "--workers", "-1"), "--workers"),
    (("test", "-m", "graph.pb", "-n", "-3"), "-n/--numb-test"),
    (("model-devi", "-m", "graph.pb", "graph.pb", "-f", "0"), "-f/--frequency"),
    (("model-devi", "-m", "graph.pb", "graph.pb", "--relative", "inf"), "--relative"),
    (("neighbor-stat", "-s", ".", "-r", "0", "-t", "O", "H"), "-r/--rcut"),
    (("neighbor-stat", "-s", ".", "-r", "-6", "-t", "O", "H"), "-r/--rcut"),
])
def test_numbers_out_of_range_are_refused_before_computing(trained, tmp_path, args, fragment):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    _refused(dp(run, *args), 2, fragment)
    assert _snapshot(run) == before


def test_rcut_far_beyond_the_box_is_refused_not_computed_without_images(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    script = json.loads((run / "input.json").read_text())
    script["model"]["descriptor"]["rcut"] = 1e300
    (run / "huge.json").write_text(json.dumps(script))
    before = _snapshot(run)
    _refused(dp(run, "train", "huge.json"), 1, "model/descriptor/rcut", "periodic images",
             "data_0")
    assert "function_node" not in dp(run, "train", "huge.json").stderr
    assert _snapshot(run) == before


# -- files damaged --------------------------------------------------------------------------

def test_freeze_onto_a_read_only_file_leaves_it(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    target = run / "kept.pb"
    target.write_bytes(b"precious")
    target.chmod(0o444)
    _refused(dp(run, "freeze", "-o", "kept.pb"), 1, "kept.pb", "read-only")
    assert target.read_bytes() == b"precious"


def test_outputs_take_the_users_umask(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    previous = os.umask(0o027)
    try:
        assert dp(run, "freeze", "-o", "new.pb").returncode == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((run / "new.pb").stat().st_mode) == 0o640


def test_compress_onto_its_own_input_is_refused(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    _refused(dp(run, "compress", "-i", "graph.pb", "-o", "./graph.pb"), 1, "graph.pb",
             "would replace")
    assert _snapshot(run) == before


def test_a_failed_train_leaves_the_previous_out_json(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    system = tmp_path / "bad_labels"  # found by the data check; its labels fail when loaded
    shutil.copytree(WATER / "data_0", system)
    np.save(system / "set.000" / "force.npy", np.zeros((3, 7)))
    script = json.loads((run / "input.json").read_text())
    script["training"]["training_data"]["systems"] = [str(system)]
    (run / "input.json").write_text(json.dumps(script))
    (run / "out.json").write_text('{"previous": "run"}')
    before = _snapshot(run)
    _refused(dp(run, "train", "input.json"), 1, "force.npy")
    assert _snapshot(run) == before


# -- tracebacks -----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated data", "garbage index"])
@pytest.mark.parametrize("command", ["freeze", "restart"])
def test_a_damaged_checkpoint_is_named(trained, tmp_path, damage, command):
    run = _copy_run(trained, tmp_path)
    if damage == "truncated data":
        target = run / "model.ckpt-2.data-00000-of-00001"
        target.write_bytes(target.read_bytes()[:100])
    else:
        (run / "model.ckpt-2.index").write_bytes(bytes(range(50)))
    before = _snapshot(run)
    args = (("freeze", "-o", "g2.pb") if command == "freeze"
            else ("train", "input.json", "--restart", "model.ckpt-2"))
    _refused(dp(run, *args), 1, "model.ckpt-2", "damaged")
    assert _snapshot(run) == before


@pytest.mark.parametrize("option", ["--restart", "--init-model"])
def test_a_checkpoint_of_another_model_names_the_variable_and_both_shapes(trained, tmp_path,
                                                                          option):
    run = _copy_run(trained, tmp_path)
    script = json.loads((run / "input.json").read_text())
    script["model"]["descriptor"]["neuron"] = [4, 16]
    (run / "other.json").write_text(json.dumps(script))
    before = _snapshot(run)
    _refused(dp(run, "train", "other.json", option, "model.ckpt"), 1, "another model",
             "filter_type_all/bias_2", "(8,)", "(16,)")
    assert _snapshot(run) == before


def test_init_model_from_a_checkpoint_without_the_models_weights_is_refused(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    script = json.loads((run / "input.json").read_text())
    del script["model"]["type_embedding"]  # per-type nets the checkpoint lacks
    (run / "plain.json").write_text(json.dumps(script))
    before = _snapshot(run)
    _refused(dp(run, "train", "plain.json", "--init-model", "model.ckpt"), 1, "lacks")
    assert _snapshot(run) == before


@pytest.mark.parametrize("option", ["--restart", "--init-model", "--init-frz-model"])
def test_a_missing_start_is_named(trained, tmp_path, option):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    _refused(dp(run, "train", "input.json", option, "nothing.here"), 1, "nothing.here")
    assert _snapshot(run) == before


@pytest.mark.parametrize("args, fragment", [
    (("freeze", "-o", "missing/g.pb"), "does not exist"),
    (("freeze", "-o", "sub"), "is a folder"),
    (("test", "-m", "graph.pb", "-s", "../data/data_3", "-d", "missing/detail"),
     "does not exist"),
    (("test", "-m", "graph.pb", "-s", "../data/data_3", "-d", "sub/"), "is a folder"),
    (("model-devi", "-m", "graph.pb", "graph.pb", "-s", "../data/data_3", "-o", "sub"),
     "is a folder"),
    (("model-devi", "-m", "graph.pb", "graph.pb", "-s", "../data/data_3", "-o", "graph.pb"),
     "would replace"),
    (("plot", "lcurve.out", "-o", "missing/l.png"), "does not exist"),
    (("train", "input.json", "-o", "missing/out.json"), "does not exist"),
])
def test_output_paths_in_a_missing_folder_or_onto_a_folder_are_refused(trained, tmp_path, args,
                                                                       fragment):
    run = _copy_run(trained, tmp_path)
    (run / "sub").mkdir()
    before = _snapshot(run)
    _refused(dp(run, *args), 1, fragment)
    assert _snapshot(run) == before


@pytest.mark.parametrize("text, fragment", [
    ("# step rmse_val rmse_trn lr\n0 1 2\n", "3 values"),
    ("# step rmse_val rmse_trn lr\n0 1 x 1e-3\n", "expected numbers"),
    ("0 1 2 3\n# step rmse_val rmse_trn lr\n", "before the header"),
    ("# step rmse_val rmse_trn\n0 1 2\n", "no column lr"),
    ("", "no learning curve"),
])
def test_dp_plot_names_what_is_wrong_with_a_malformed_lcurve(tmp_path, text, fragment):
    pytest.importorskip("matplotlib")
    (tmp_path / "lcurve.out").write_text(text)
    _refused(dp(tmp_path, "plot", "lcurve.out"), 1, "lcurve.out", fragment)
    assert not (tmp_path / "lcurve.png").exists()


# -- unclear messages -----------------------------------------------------------------------

def test_a_label_of_the_wrong_frame_count_says_how_many_frames(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    system = tmp_path / "short"
    shutil.copytree(WATER / "data_0", system)
    energy = np.load(system / "set.000" / "energy.npy")
    nframes = np.load(system / "set.000" / "coord.npy").shape[0]
    np.save(system / "set.000" / "energy.npy", energy.ravel()[:nframes - 3])
    script = json.loads((run / "input.json").read_text())
    script["training"]["training_data"]["systems"] = [str(system)]
    (run / "input.json").write_text(json.dumps(script))
    _refused(dp(run, "train", "input.json"), 1, "energy.npy", f"{nframes} frames",
             f"{nframes - 3} values")


def test_dp_test_prints_no_tensorflow_log_noise(trained):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "deepmd_tebd.cli", "test", "-m", "graph.pb",
                             "-s", str(WATER / "data_3"), "-n", "2"], cwd=trained, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Energy RMSE" in result.stderr
    assert "Not handling type" not in result.stderr and "WARNING:tensorflow" not in result.stderr
