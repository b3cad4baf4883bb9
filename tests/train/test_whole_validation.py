"""training/whole_validation: the figures of every validation frame equal `dp test` of the frozen
checkpoint; the best model survives checkpoint rotation and --restart and `dp freeze --best`
freezes it; early stopping stops after its patience and a restart continues its count."""
import json
from pathlib import Path

import numpy as np
import pytest
from dp_command import run_dp
from shared_paths import INPUTS, WATER, needs_water

from deepmd_tebd.train.lcurve import read_lcurve

pytestmark = [needs_water, pytest.mark.slow]


def _dp(cwd, *args, check=True):
    result = run_dp(cwd, *args)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _validation_system(path: Path, source: str, frames: slice) -> None:
    """Water frames of `source` with random virial labels (one set)."""
    base = WATER / source / "set.000"
    (path / "set.000").mkdir(parents=True)
    for name in ("type.raw", "type_map.raw"):
        (path / name).write_text((WATER / source / name).read_text())
    for key in ("coord", "box", "energy", "force"):
        np.save(path / "set.000" / f"{key}.npy", np.load(base / f"{key}.npy")[frames])
    nf = np.load(path / "set.000/coord.npy").shape[0]
    np.save(path / "set.000/virial.npy", np.random.RandomState(nf).normal(size=(nf, 9)))


def _workdir(tmp: Path, numb_steps: int, save_freq: int, whole: dict, **training) -> Path:
    script = json.loads((INPUTS / "water_se_e2_a_tebd.json").read_text())
    script["model"]["descriptor"].update(neuron=[8, 16], axis_neuron=4)
    script["model"]["fitting_net"]["neuron"] = [16, 16]
    script["learning_rate"]["decay_steps"] = 2
    script["training"].update(numb_steps=numb_steps, disp_freq=save_freq, save_freq=save_freq,
                              whole_validation=whole, **training)
    script["training"]["training_data"]["systems"] = [str(WATER / "data_0")]
    script["training"]["validation_data"]["systems"] = "../valid"
    if not (tmp / "valid").exists():
        _validation_system(tmp / "valid/a", "data_3", slice(0, 3))
        _validation_system(tmp / "valid/b", "data_1", slice(2, 4))
    run = tmp / "run"
    run.mkdir(exist_ok=True)
    (run / "input.json").write_text(json.dumps(script, indent=1))
    return run


def _rows(path: Path) -> tuple[list[str], np.ndarray]:
    return read_lcurve(str(path))


def _dp_test_figures(graph: Path, root: Path) -> dict:
    """`dp test`'s figures (weighted average over the systems) of a frozen model."""
    from deepmd_tebd.data.system import System, find_systems
    from deepmd_tebd.infer import DeepPot
    from deepmd_tebd.infer.prediction_errors import (evaluate_system, load_test_frames,
                                                     weighted_average)

    dp = DeepPot(graph)
    results = []
    for path in find_systems(str(root)):
        sys_ = System(path, dp.get_type_map())
        results.append(evaluate_system(dp, sys_, load_test_frames(sys_, "set", 0, False, None),
                                       False, None, False))
    dp.close()
    return weighted_average(results)


def test_whole_validation_equals_dp_test_of_the_frozen_checkpoint(tmp_path):
    run = _workdir(tmp_path, 4, 2, {"batch_atoms": 400}, tensorboard=True)  # 2 frames a chunk
    result = _dp(run, "train", "input.json")
    assert "whole validation at step 4 (5 frames, " in result.stderr
    _dp(run, "freeze", "-o", "graph.pb")
    names, rows = _rows(run / "valid.out")
    assert names == ["step", "rmse_e", "rmse_f", "rmse_v", "loss", "loss_final", "lr"]
    assert rows[:, 0].tolist() == [2, 4]
    figures = dict(zip(names, rows[-1]))
    theirs = _dp_test_figures(run / "graph.pb", tmp_path / "valid")
    for ours, key in (("rmse_e", "rmse_ea"), ("rmse_f", "rmse_f"), ("rmse_v", "rmse_va")):
        assert figures[ours] == pytest.approx(theirs[key], rel=1e-8), ours
    # the loss (loss.py) of the whole set: energy and force terms at the step's prefactors
    from deepmd_tebd.learning_rate import loss_prefactor

    script = json.loads((run / "input.json").read_text())
    loss, lr = script["loss"], script["learning_rate"]
    final_lr = lr["stop_lr"]  # step 4 = numb_steps, a multiple of decay_steps
    pe = loss_prefactor(final_lr, lr["start_lr"], loss["start_pref_e"], loss["limit_pref_e"])
    pf = loss_prefactor(final_lr, lr["start_lr"], loss["start_pref_f"], loss["limit_pref_f"])
    expected = pe * theirs["rmse_ea"] ** 2 * 192 + pf * theirs["rmse_f"] ** 2
    assert figures["loss"] == pytest.approx(expected, rel=1e-8)
    assert figures["loss_final"] == pytest.approx(expected, rel=1e-8)
    assert rows[0, 4] != rows[0, 5]  # at step 2 the current prefactors are not the final ones
    import tensorflow as tf

    scalars = {}
    for event_file in (run / "log").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.tag.startswith("whole_validation/"):
                    scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert scalars[("whole_validation/rmse_f", 4)] == pytest.approx(figures["rmse_f"], rel=1e-6)
    assert scalars[("whole_validation/loss_final", 2)] == pytest.approx(rows[0, 5], rel=1e-6)


def test_scripts_without_whole_validation_write_no_valid_file(tmp_path):
    run = _workdir(tmp_path, 2, 2, None)
    script = json.loads((run / "input.json").read_text())
    del script["training"]["whole_validation"]
    (run / "input.json").write_text(json.dumps(script))
    result = _dp(run, "train", "input.json")
    assert not (run / "valid.out").exists() and "whole validation" not in result.stderr
    assert not list(run.glob("model.ckpt-best*"))
    assert "whole_validation" not in json.loads((run / "out.json").read_text())["training"]


def test_best_model_is_the_lowest_recorded_error_through_rotation_and_restart(tmp_path):
    """Two steps of ordinary training, then a restart whose huge learning rate ruins the model:
    the best model stays the checkpoint of the lowest loss_final in valid.out, though
    max_ckpt_keep 1 rotated its numbered checkpoint away, and `dp freeze --best` freezes it."""
    run = _workdir(tmp_path, 2, 1, {}, max_ckpt_keep=1)
    _dp(run, "train", "input.json")
    script = json.loads((run / "input.json").read_text())
    script["training"]["numb_steps"] = 5
    script["learning_rate"].update(start_lr=0.5, stop_lr=0.1)
    (run / "input.json").write_text(json.dumps(script))
    _dp(run, "train", "input.json", "--restart", "model.ckpt")
    names, rows = _rows(run / "valid.out")
    assert rows[:, 0].tolist() == [1, 2, 3, 4, 5]
    best = rows[np.argmin(rows[:, names.index("loss_final")])]
    assert best[0] <= 2 < rows[-1, 0]
    assert sorted(p.name for p in run.glob("model.ckpt-[0-9]*.index")) == ["model.ckpt-5.index"]
    _dp(run, "freeze", "--best", "-o", "best.pb")
    theirs = _dp_test_figures(run / "best.pb", tmp_path / "valid")
    assert best[names.index("rmse_f")] == pytest.approx(theirs["rmse_f"], rel=1e-8)
    assert best[names.index("rmse_e")] == pytest.approx(theirs["rmse_ea"], rel=1e-8)


def test_freeze_best_without_a_best_model_is_refused(tmp_path):
    run = _workdir(tmp_path, 1, 1, None)
    script = json.loads((run / "input.json").read_text())
    del script["training"]["whole_validation"]
    (run / "input.json").write_text(json.dumps(script))
    _dp(run, "train", "input.json")
    result = _dp(run, "freeze", "--best", check=False)
    assert result.returncode == 1 and "no best model" in result.stderr


STOPPING = {"freq": 1, "save_best": False,
            "early_stopping": {"patience": 2, "min_delta": 1e-6, "metric": "loss_final"}}


def _stalled(tmp_path, numb_steps):
    """A run whose learning rate is too small for the validation error to improve by min_delta."""
    run = _workdir(tmp_path, numb_steps, 2, STOPPING)
    script = json.loads((run / "input.json").read_text())
    script["learning_rate"].update(start_lr=1e-12, stop_lr=1e-12)
    (run / "input.json").write_text(json.dumps(script))
    return run


def test_early_stopping_stops_after_its_patience(tmp_path):
    run = _stalled(tmp_path, 10)
    result = _dp(run, "train", "input.json")
    assert "early stopping at step 3" in result.stderr
    assert _rows(run / "valid.out")[1][:, 0].tolist() == [1, 2, 3]
    assert (run / "model.ckpt-3.index").exists() and not list(run.glob("model.ckpt-best*"))


def test_early_stopping_count_survives_restart(tmp_path):
    run = _stalled(tmp_path, 2)
    assert "early stopping" not in _dp(run, "train", "input.json").stderr
    script = json.loads((run / "input.json").read_text())
    script["training"]["numb_steps"] = 10
    (run / "input.json").write_text(json.dumps(script))
    result = _dp(run, "train", "input.json", "--restart", "model.ckpt")
    assert "early stopping at step 3" in result.stderr  # a fresh count would stop at step 5
    assert (run / "model.ckpt-3.index").exists()
