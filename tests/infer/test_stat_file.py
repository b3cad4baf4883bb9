"""`training/stat_file` keeps the data statistics of a fresh run for the next, in DeePMD-kit's
layout: a second run reads every statistic instead of computing it; a file of another cut-off
or selection is not taken; DeePMD-kit 3.2 writes the same file (keys, shapes, values) for the
same script and data, and each side's training reads the other's file; a file that cannot be
read stops `dp train` before anything is written."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import dp, make_workdir, oracle_dp
from shared_paths import DEEPMD_3_2_EXAMPLES, INPUTS, needs_water

from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.data.stats import (COMPUTED, compute_model_statistics,
                                    descriptor_stats_from_sums)
from deepmd_tebd.infer.graph_file import read_graph_def
from deepmd_tebd.infer.weight_names import graph_constants
from deepmd_tebd.store.stat_file import StatFile, StatFileError, descriptor_stat_key

SCRIPT = {"model": {"type_map": ["O", "H", "C"],
                    "descriptor": {"type": "se_e2_a", "sel": [4, 8, 2], "rcut": 6,
                                   "rcut_smth": 0.5},
                    "fitting_net": {"numb_fparam": 2}},
          "learning_rate": {"type": "exp"},
          "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}


def _batches(rng, nsys=2, nbatch=3):
    """Batches of 5 atoms (types 0, 0, 1, 1, 1: no type 2) with a raw environment matrix."""
    nnei = 14
    return [[{"type": np.array([0, 0, 1, 1, 1]), "natoms_vec": np.array([5, 5, 2, 3, 0]),
              "energy": rng.normal(-10.0, 1.0, 2), "fparam": rng.normal(size=(2, 2)),
              "raw": rng.normal(size=(2, 5, 4 * nnei))} for _ in range(nbatch)]
            for _ in range(nsys)]


def _settings(**descriptor):
    script = json.loads(json.dumps(SCRIPT))
    script["model"]["descriptor"].update(descriptor)
    return build_config(normalize(script, "in.json")).model


def _statistics(stat, stored):
    return compute_model_statistics(stat, _settings(), lambda batch: batch["raw"], stored)


def _open(path, settings=None):
    settings = settings or _settings()
    return StatFile.open(path, settings.type_map, descriptor_stat_key(settings.descriptor, 3), 3)


class _NoData(list):
    def __iter__(self):
        raise AssertionError("a statistic was computed instead of read")


@pytest.mark.parametrize("name", ["stats.hdf5", "stats.h5", "stats"])
def test_a_second_run_reads_every_statistic_instead_of_computing_it(tmp_path, name):
    stat = _batches(np.random.default_rng(0))
    computed = _statistics(stat, COMPUTED)
    first = _statistics(stat, _open(tmp_path / name))
    again = _statistics(_NoData(), _open(tmp_path / name))
    for field in ("davg", "dstd", "bias_atom_e", "fparam_avg", "fparam_istd"):
        np.testing.assert_allclose(getattr(first, field), getattr(computed, field), rtol=1e-14)
        np.testing.assert_allclose(getattr(again, field), getattr(computed, field), rtol=1e-14)
    assert (tmp_path / name).is_dir() == (name == "stats")


def test_another_cutoff_or_selection_is_not_taken_from_the_file(tmp_path):
    stat = _batches(np.random.default_rng(1))
    _statistics(stat, _open(tmp_path / "stats"))
    with pytest.raises(AssertionError, match="computed instead of read"):
        _statistics(_NoData(), _open(tmp_path / "stats", _settings(rcut=5.0)))
    keys = {descriptor_stat_key(_settings(**change).descriptor, 3)
            for change in ({}, {"rcut": 6.0}, {"rcut_smth": 0.25}, {"sel": [4, 8, 3]})}
    assert len(keys) == 4  # 6 and 6.0 differ, as in DeePMD-kit's hash


def test_the_file_holds_deepmd_kits_arrays(tmp_path):
    stat = _batches(np.random.default_rng(2))
    stats = _statistics(stat, _open(tmp_path / "stats.h5"))
    group = "O H C/" + descriptor_stat_key(_settings().descriptor, 3)
    with h5py.File(tmp_path / "stats.h5") as f:
        r = np.array([f[f"{group}/r_{t}"][()] for t in range(3)])
        a = np.array([f[f"{group}/a_{t}"][()] for t in range(3)])
        assert list(f["O H C/observed_type"][()]) == [b"H", b"O"]  # by atomic number
        np.testing.assert_array_equal(f["O H C/bias_atom_energy"][()].ravel(), stats.bias_atom_e)
        assert f["O H C/std_atom_energy"].shape == (3, 1)
        assert f["O H C/fparam"].shape == (2, 3)
        assert "O H C/__deepmd_output_stat_transaction__" not in f
    assert r[2, 0] == 0 and r[0, 0] == 2 * 3 * 2 * 2 * 14  # slots of type-0 centres
    np.testing.assert_array_equal(a[:, 0], 3 * r[:, 0])
    sums = np.column_stack([r[:, 1], r[:, 2], a[:, 1] / 3, a[:, 2] / 3, r[:, 0]])
    davg, dstd = descriptor_stats_from_sums(sums, 14, 6.0)
    np.testing.assert_allclose(stats.davg, davg, rtol=1e-14)
    np.testing.assert_allclose(stats.dstd, dstd, rtol=1e-14)


def _tiny_water_script(stat_file: str, systems=("data_0", "data_2")) -> dict:
    """DeePMD-kit 3.2's se_e2_a_tebd example made small: one step, every frame of each system
    in its one statistics batch (80 frames a set), rcut an integer as a user may write it."""
    script = json.loads((DEEPMD_3_2_EXAMPLES / "se_e2_a_tebd.json").read_text())
    script["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2, rcut=6)
    script["model"]["fitting_net"]["neuron"] = [8]
    script["model"]["data_stat_nbatch"] = 1
    training = script["training"]
    training.update(numb_steps=1, disp_freq=1, save_freq=1, stat_file=stat_file)
    training["training_data"].update(systems=[f"../data/{s}" for s in systems], batch_size=80)
    training["validation_data"].update(systems=["../data/data_3"], numb_btch=1)
    return script


@needs_water
@pytest.mark.parametrize("problem", ["not hdf5", "a file, not a folder", "a wrong shape"])
def test_a_stat_file_that_cannot_be_read_stops_dp_train_before_anything_is_written(
        tmp_path, problem):
    name = {"not hdf5": "stats.hdf5"}.get(problem, "stats")
    run = make_workdir(tmp_path, _tiny_water_script(name))
    if problem == "a wrong shape":
        settings = build_config(normalize(_tiny_water_script(name), "in.json")).model
        group = run / "stats" / "O H" / descriptor_stat_key(settings.descriptor, 2)
        group.mkdir(parents=True)
        for k in "ra":
            for t in range(2):
                np.save(group / f"{k}_{t}", np.zeros(4))
                (group / f"{k}_{t}.npy").rename(group / f"{k}_{t}")
    else:
        (run / name).write_text("statistics\n")
    before = sorted(p.name for p in run.iterdir())
    result = dp(run, "train", "input.json")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "training/stat_file" in result.stderr and name in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in run.iterdir()) == before


def _graph_statistics(run) -> dict:
    constants = graph_constants(read_graph_def(run / "frozen_model.pb"))
    return {k: constants[k] for k in ("descrpt_attr/t_avg", "descrpt_attr/t_std",
                                      "fitting_attr/t_bias_atom_e")}


def _file_statistics(path) -> dict:
    """The model statistics that a stat file gives, by this package's arithmetic."""
    settings = build_config(normalize(_tiny_water_script(str(path)), "in.json")).model
    stats = compute_model_statistics(_NoData(), settings, None, StatFile.open(
        path, ["O", "H"], descriptor_stat_key(settings.descriptor, 2), 2))
    return {"descrpt_attr/t_avg": stats.davg, "descrpt_attr/t_std": stats.dstd,
            "fitting_attr/t_bias_atom_e": stats.bias_atom_e}


def _both_write(tmp_path, script) -> dict:
    """{side: run folder} after ours and DeePMD-kit trained `script` (one step), each writing
    stats.hdf5; asserts the two files hold the same arrays (keys, dtypes, shapes; 1e-12)."""
    runs = {}
    for side, runner in (("ours", dp), ("theirs", oracle_dp)):
        runs[side] = make_workdir(tmp_path / side, script)
        result = runner(runs[side], "train", "input.json")
        assert result.returncode == 0, result.stderr[-3000:]
    keys = {}
    with h5py.File(runs["ours"] / "stats.hdf5") as ours, \
            h5py.File(runs["theirs"] / "stats.hdf5") as theirs:
        for side, f in (("ours", ours), ("theirs", theirs)):
            keys[side] = []
            f.visit(keys[side].append)
        assert sorted(keys["ours"]) == sorted(keys["theirs"])
        for key in keys["ours"]:
            if isinstance(ours[key], h5py.Dataset):
                mine, its = ours[key][()], theirs[key][()]
                assert (mine.dtype.kind, mine.shape) == (its.dtype.kind, its.shape), key
                if mine.dtype.kind == "f":
                    np.testing.assert_allclose(mine, its, rtol=1e-12, err_msg=key)
                else:
                    assert mine.tolist() == its.tolist(), key
    return runs


@needs_water
@pytest.mark.slow
def test_dpa1_statistics_go_to_deepmd_kits_key(tmp_path):
    """se_atten_v2 (DeePMD-kit's example, small): one sel block, statistics per centre type,
    under the key of mixed types; both write the same file."""
    script = json.loads((INPUTS / "water_se_atten.json").read_text())
    script["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2, attn=4, attn_layer=1,
                                         sel=40)  # 80-frame batches: a small attention
    script["model"]["fitting_net"]["neuron"] = [8]
    script["model"]["data_stat_nbatch"] = 1
    training = script["training"]
    training.update(numb_steps=1, disp_freq=1, save_freq=1, stat_file="stats.hdf5")
    training["training_data"].update(systems=["../data/data_0", "../data/data_2"],
                                     batch_size=80)
    training["validation_data"].update(systems=["../data/data_3"], numb_btch=1)
    runs = _both_write(tmp_path, script)
    with h5py.File(runs["ours"] / "stats.hdf5") as f:
        groups = [k for k in f["O H"].keys() if len(k) == 40]
        assert len(groups) == 1 and sorted(f["O H"][groups[0]].keys()) == [
            "a_0", "a_1", "r_0", "r_1"]


@needs_water
@pytest.mark.slow
def test_deepmd_kit_writes_the_same_file_and_each_side_reads_the_others(tmp_path):
    runs = _both_write(tmp_path, _tiny_water_script("stats.hdf5"))
    # each side trains on data_3 alone from the other's file: its statistics are the file's
    for side, runner, other in (("ours", dp, "theirs"), ("theirs", oracle_dp, "ours")):
        run = make_workdir(tmp_path / f"{side}_reads", _tiny_water_script(
            "stats.hdf5", systems=("data_3",)))
        shutil.copy(runs[other] / "stats.hdf5", run / "stats.hdf5")
        for args in (("train", "input.json"), ("freeze", "-o", "frozen_model.pb")):
            result = runner(run, *args)
            assert result.returncode == 0, result.stderr[-3000:]
        expected = _file_statistics(run / "stats.hdf5")
        for key, value in _graph_statistics(run).items():
            np.testing.assert_allclose(value.reshape(expected[key].shape), expected[key],
                                       rtol=1e-12, err_msg=f"{side}: {key}")


def test_an_unreadable_stat_file_is_an_error_naming_the_key(tmp_path):
    (tmp_path / "stats.h5").mkdir()
    with pytest.raises(StatFileError, match="training/stat_file: is not a file"):
        _open(tmp_path / "stats.h5")
