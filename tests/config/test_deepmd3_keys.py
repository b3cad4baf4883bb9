"""Keys DeePMD-kit 3.x added, read with the meaning DeePMD-kit 3.2's TensorFlow backend gives
them; an absent key keeps this package's DeePMD-kit 2.2 meaning, and the normalised script
(out.json) holds the 3.x keys the user gave and no others."""
from __future__ import annotations

import copy
import json

import pytest

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.config.normalize import ignored_keys


@pytest.mark.parametrize("value", [True, False])
def test_use_tebd_bias_is_kept_in_the_normalised_script_and_read(tebd, value):
    script = copy.deepcopy(tebd)
    script["model"]["type_embedding"]["use_tebd_bias"] = value
    normal = normalize(script, "input.json")
    assert normal["model"]["type_embedding"]["use_tebd_bias"] is value
    assert build_config(normal).model.type_embedding.use_tebd_bias is value


def test_an_absent_use_tebd_bias_keeps_the_biases_and_is_not_written(tebd):
    normal = normalize(copy.deepcopy(tebd), "input.json")
    assert "use_tebd_bias" not in normal["model"]["type_embedding"]
    assert build_config(normal).model.type_embedding.use_tebd_bias is True


def test_use_tebd_bias_must_be_a_boolean(tebd):
    script = copy.deepcopy(tebd)
    script["model"]["type_embedding"]["use_tebd_bias"] = "no"
    with pytest.raises(ConfigError, match="model/type_embedding/use_tebd_bias"):
        normalize(script, "input.json")


def _with(script: dict, path: str, value) -> dict:
    script = copy.deepcopy(script)
    *keys, last = path.split("/")
    node = script
    for key in keys:
        node = node.setdefault(key, {})
    node[last] = value
    return script


# keys DeePMD-kit's TensorFlow backend raises for (at another value than their default)
REFUSED = [("model/descriptor/env_protection", 1.0), ("model/fitting_net/default_fparam", [1.0]),
           ("model/fitting_net/dim_case_embd", 2), ("loss/f_use_norm", True),
           ("loss/loss_func", "mae"), ("loss/use_default_pf", True),
           ("optimizer/type", "SGD"), ("optimizer/weight_decay", 0.1)]
# keys it accepts and ignores (PyTorch-only training keys, model metadata)
IGNORED = [("training/enable_ema", True), ("training/zero_stage", 1),
           ("training/enable_compile", True), ("model/info", {"author": "me"}),
           ("model/atom_exclude_types", [1]), ("training/training_data/min_pair_dist", 0.5),
           ("validating", {"full_validation": False}), ("loss/start_pref_h", 1.0)]


@pytest.mark.parametrize("path, value", REFUSED, ids=[p for p, _ in REFUSED])
def test_keys_deepmd_kits_tensorflow_backend_refuses_are_refused_with_its_reason(tebd, path,
                                                                               value):
    with pytest.raises(ConfigError) as err:
        normalize(_with(tebd, path, value), "input.json")
    assert [p.path for p in err.value.problems] == [path]
    assert "TensorFlow backend raises" in str(err.value)


@pytest.mark.parametrize("path, value", REFUSED[:2], ids=[p for p, _ in REFUSED[:2]])
def test_dp_train_refuses_them_before_anything_is_written(tebd, path, value, tmp_path):
    from dp_command import run_dp

    (tmp_path / "input.json").write_text(json.dumps(_with(tebd, path, value)))
    result = run_dp(tmp_path, "train", "input.json")
    assert result.returncode == 1
    assert f"input.json: {path}: " in result.stderr, result.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["input.json"]


@pytest.mark.parametrize("path, value", IGNORED, ids=[p for p, _ in IGNORED])
def test_ignored_keys_are_accepted_with_one_warning_naming_them(tebd, path, value, tmp_path):
    from dp_command import run_dp

    (tmp_path / "input.json").write_text(json.dumps(_with(tebd, path, value)))
    result = run_dp(tmp_path, "check", "input.json", "--skip-data")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "3.x options" in line]
    assert len(warnings) == 1 and path in warnings[0], result.stderr[-2000:]
    assert json.loads(result.stdout)  # the normalised script, the ignored key in it
    assert ignored_keys(normalize(_with(tebd, path, value), "input.json")) == [path]


def test_use_econf_tebd_reads_the_type_map_as_elements(tebd):
    script = _with(tebd, "model/type_embedding/use_econf_tebd", True)
    normal = normalize(script, "input.json")
    assert build_config(normal).model.type_embedding.use_econf_tebd is True
    assert "use_econf_tebd" not in normalize(copy.deepcopy(tebd), "x")["model"]["type_embedding"]
    for type_map, fragment in ((["O", "Hx"], "['Hx']"), (None, "needs model/type_map")):
        bad = copy.deepcopy(script)
        if type_map is None:
            del bad["model"]["type_map"]
        else:
            bad["model"]["type_map"] = type_map
        with pytest.raises(ConfigError) as err:
            normalize(bad, "input.json")
        assert "model/type_embedding/use_econf_tebd" in str(err.value)
        assert fragment in str(err.value)


def test_learning_rate_keys_of_3x_are_read_and_checked_against_each_other(tebd):
    script = _with(tebd, "learning_rate/stop_lr_ratio", 0.01)
    del script["learning_rate"]["stop_lr"]
    script["learning_rate"].update(warmup_ratio=0.1, warmup_start_factor=0.2, smooth=True)
    normal = normalize(script, "input.json")
    assert "stop_lr" not in normal["learning_rate"]  # the default gives way to the ratio
    lr = build_config(normal).learning_rate
    assert lr.stop_lr == pytest.approx(0.01 * lr.start_lr)
    assert (lr.warmup_ratio, lr.warmup_start_factor, lr.smooth) == (0.1, 0.2, True)
    for change, path in (({"stop_lr": 1e-8}, "learning_rate/stop_lr_ratio"),
                         ({"warmup_steps": 10}, "learning_rate/warmup_ratio"),
                         ({"warmup_ratio": None, "warmup_steps": 10 ** 9},
                          "learning_rate/warmup_steps"),
                         ({"decay_rate": 1.5}, "learning_rate/decay_rate")):
        bad = copy.deepcopy(script)
        bad["learning_rate"].update(change)
        with pytest.raises(ConfigError) as err:
            normalize(bad, "input.json")
        assert path in [p.path for p in err.value.problems], str(err.value)


def test_adam_betas_are_read_from_the_optimizer_section(tebd):
    script = _with(tebd, "optimizer", {"type": "Adam", "adam_beta1": 0.8, "adam_beta2": 0.99})
    assert build_config(normalize(script, "input.json")).adam_betas == (0.8, 0.99)
    assert build_config(normalize(copy.deepcopy(tebd), "x")).adam_betas == (0.9, 0.999)


def test_numb_epoch_replaces_numb_steps_and_one_of_them_is_required(tebd):
    script = copy.deepcopy(tebd)
    del script["training"]["numb_steps"]
    script["training"]["num_epochs"] = 2.5  # one of DeePMD-kit's aliases
    normal = normalize(script, "input.json")
    assert normal["training"]["numb_epoch"] == 2.5 and "numb_steps" not in normal["training"]
    assert build_config(normal).training.numb_steps is None  # until the data resolve it
    for change, message in (({"numb_steps": 10}, "both are given"),
                            ({}, "required key is missing")):
        bad = copy.deepcopy(normal)
        bad["training"].update(change)
        if not change:  # neither
            del bad["training"]["numb_epoch"]
        with pytest.raises(ConfigError, match=f"training/numb_steps: .*{message}"):
            normalize(bad, "input.json")


def test_training_warmup_and_optimizer_keys_move_as_deepmd_kit_moves_them(tebd):
    script = copy.deepcopy(tebd)
    script["training"].update(warmup_steps=100, warmup_start_factor=0.1, opt_type="Adam",
                              adam_beta2=0.99)
    normal = normalize(script, "input.json")
    assert {k: normal["learning_rate"][k] for k in ("warmup_steps", "warmup_start_factor")} == {
        "warmup_steps": 100, "warmup_start_factor": 0.1}
    assert normal["optimizer"] == {"type": "Adam", "adam_beta2": 0.99}
    assert not {"warmup_steps", "opt_type", "adam_beta2"} & set(normal["training"])
    script["learning_rate"]["warmup_steps"] = 50
    with pytest.raises(ConfigError, match="training/warmup_steps: given in learning_rate too"):
        normalize(script, "input.json")
    script = _with(tebd, "training/opt_type", "LKF")
    with pytest.raises(ConfigError, match="optimizer/type: .*TensorFlow backend raises"):
        normalize(script, "input.json")


def test_change_bias_after_training_is_read_and_refused_with_frame_parameters(tebd):
    script = _with(tebd, "training/change_bias_after_training", True)
    script["model"]["data_bias_nsample"] = 3
    config = build_config(normalize(script, "input.json"))
    assert config.training.change_bias_after_training and config.model.data_bias_nsample == 3
    script["model"]["fitting_net"]["numb_fparam"] = 2
    with pytest.raises(ConfigError, match="training/change_bias_after_training: not yet with"):
        normalize(script, "input.json")


def test_stat_file_is_kept_and_read_and_stat_file_mode_checked_as_deepmd_kit_checks_it(tebd):
    normal = normalize(_with(tebd, "training/stat_file", "stats.hdf5"), "input.json")
    assert normal["training"]["stat_file"] == "stats.hdf5"
    assert build_config(normal).training.stat_file == "stats.hdf5"
    assert build_config(normalize(copy.deepcopy(tebd), "input.json")).training.stat_file is None
    for path, value, expected in (("training/stat_file", "", "training/stat_file"),
                                  ("training/stat_file_mode", "write", "training/stat_file_mode"),
                                  ("training/stat_file_mode", "read", "needs training/stat_file")):
        with pytest.raises(ConfigError, match=expected):
            normalize(_with(tebd, path, value), "input.json")
