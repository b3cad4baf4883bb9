"""Conversion of DeePMD-kit v0 and v1 input scripts to the v2 layout (what DeePMD-kit's
`deepmd/utils/compat.py` does): v0 has no `model` section, v1 keeps the data keys in `training`."""
from __future__ import annotations

import logging
import math
import warnings

from .errors import ConfigError, Problem

log = logging.getLogger(__name__)

_V1_DATA_KEYS = ("systems", "set_prefix", "batch_size", "sys_prob", "sys_probs", "auto_prob",
                 "sys_weights", "auto_prob_style")


def script_version(data: dict) -> int:
    """0: no model and no training section (flat v0 keys); 1: data keys inside training; 2."""
    if "model" not in data and "training" not in data:
        return 0
    training = data.get("training")
    if isinstance(training, dict) and "systems" in training:
        return 1
    return 2


def convert_to_v2(data: dict, source: str) -> dict:
    """A v2 script from a v0, v1 or v2 one (a new dict; the input is not modified)."""
    version = script_version(data)
    if version == 0:
        data = _v0_to_v1(data, source)
    if version <= 1:
        data = _v1_to_v2(data, source)
    training = data.get("training")
    if isinstance(training, dict) and "numb_test" in training:
        warnings.warn("training/numb_test is deprecated and ignored", DeprecationWarning)
        data = {**data, "training": {k: v for k, v in training.items() if k != "numb_test"}}
    return _move_legacy_training_keys(data, source)


# DeePMD-kit 3.1's training keys that 3.2 moves: the warm-up into learning_rate, the optimizer's
# into an optimizer section (opt_type becoming its type)
_LEGACY_WARMUP = ("warmup_steps", "warmup_ratio", "warmup_start_factor")
_LEGACY_OPTIMIZER = ("opt_type", "kf_blocksize", "kf_start_pref_e", "kf_limit_pref_e",
                     "kf_start_pref_f", "kf_limit_pref_f", "weight_decay", "momentum",
                     "muon_momentum", "adam_beta1", "adam_beta2", "lr_adjust", "lr_adjust_coeff",
                     "muon_2d_only", "min_2d_dim")


def _move_legacy_training_keys(data: dict, source: str) -> dict:
    """The keys DeePMD-kit 3.2 moves out of training, moved as it moves them (a warning each
    time); a warm-up key given in both places is refused, as DeePMD-kit refuses it."""
    training, lr = data.get("training"), data.get("learning_rate")
    if not isinstance(training, dict):
        return data
    warmup = [k for k in _LEGACY_WARMUP if k in training]
    optimizer = [k for k in _LEGACY_OPTIMIZER if k in training]
    if not (optimizer or warmup and isinstance(lr, dict)):
        return data
    data, training = dict(data), dict(training)
    if warmup and isinstance(lr, dict):
        both = [k for k in warmup if k in lr]
        if both:
            raise ConfigError(source, [Problem(f"training/{k}", "given in learning_rate too; "
                                               "give it there only (DeePMD-kit raises "
                                               "ValueError)") for k in both])
        data["learning_rate"] = {**lr, **{k: training.pop(k) for k in warmup}}
        log.warning(f"{source}: training/{', '.join(warmup)} moved to learning_rate, as "
                    "DeePMD-kit 3.2 moves them")
    if optimizer:
        moved = {("type" if k == "opt_type" else k): training.pop(k) for k in optimizer}
        data["optimizer"] = {**(data.get("optimizer") or {}), **moved}
        log.warning(f"{source}: training/{', '.join(optimizer)} moved to the optimizer section, "
                    "as DeePMD-kit 3.2 moves them")
    data["training"] = training
    return data


def _require(data, keys, source, where=""):
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(source, [Problem(f"{where}{k}", "required key of a v0 input script is "
                                           "missing") for k in missing])


def _pick(data, keys):
    return {k: data[k] for k in keys if k in data}


def _v0_to_v1(data: dict, source: str) -> dict:
    _require(data, ["systems", "stop_batch", "batch_size", "disp_freq", "numb_test", "save_freq",
                    "save_ckpt", "disp_training", "time_training"], source)
    if data.get("use_smooth", False):
        _require(data, ["sel_a", "rcut"], source)
        descriptor = {"type": "se_a", "sel": data["sel_a"], "rcut": data["rcut"],
                      "rcut_smth": data.get("rcut_smth", data["rcut"])}
        if "filter_neuron" in data:
            descriptor["neuron"] = data["filter_neuron"]
        for key in ("axis_neuron", "n_axis_neuron"):
            if key in data:
                descriptor["axis_neuron"] = data[key]
        descriptor["resnet_dt"] = data.get("filter_resnet_dt", False)
    else:
        descriptor = {"type": "loc_frame",
                      **_pick(data, ["sel_a", "sel_r", "rcut", "axis_rule"])}
    if "seed" in data:
        descriptor["seed"] = data["seed"]
    fitting = {}
    for key in ("fitting_neuron", "n_neuron"):
        if key in data:
            fitting["neuron"] = data[key]
    fitting["resnet_dt"] = data.get("fitting_resnet_dt", True)
    if "seed" in data:
        fitting["seed"] = data["seed"]
    model = {"descriptor": descriptor, "fitting_net": fitting}
    if "type_map" in data:
        model["type_map"] = data["type_map"]
    lr = {"type": "exp", **_pick(data, ["decay_steps", "decay_rate", "start_lr"])}
    loss = _pick(data, ["start_pref_e", "limit_pref_e", "start_pref_f", "limit_pref_f",
                        "start_pref_v", "limit_pref_v", "start_pref_ae", "limit_pref_ae"])
    training = _pick(data, ["systems", "set_prefix", "stop_batch", "batch_size", "disp_freq",
                            "numb_test", "save_freq", "save_ckpt", "disp_training",
                            "time_training", "disp_file", "profiling", "profiling_file", "seed"])
    return {"model": model, "learning_rate": lr, "loss": loss, "training": training}


def _v1_to_v2(data: dict, source: str) -> dict:
    data = dict(data)
    training = dict(data["training"])
    if "training_data" in training:
        raise ConfigError(source, [Problem("training", "Both v1 (training/systems) and v2 "
                                           "(training/training_data) parameters are given.")])
    # DeePMD-kit's list moves `sys_prob` (a v1 misspelling); the v1 key `sys_probs` moves too
    training_data = {k: training.pop(k) for k in _V1_DATA_KEYS if k in training}
    if "sys_prob" in training_data:
        training_data["sys_probs"] = training_data.pop("sys_prob")
    training.pop("numb_test", None)
    training["training_data"] = training_data
    lr = data.get("learning_rate")
    if isinstance(lr, dict) and "decay_rate" in lr:
        lr = dict(lr)
        steps = training.get("stop_batch", training.get("numb_steps"))
        lr["stop_lr"] = _stop_lr_of_decay_rate(lr.pop("decay_rate"), lr.get("start_lr", 1e-3),
                                               lr.get("decay_steps", 5000), steps, source)
        data["learning_rate"] = lr
    data["training"] = training
    log.warning("the input script is in the v1 layout; it was converted to v2")
    return data


def _stop_lr_of_decay_rate(rate, start_lr, decay_steps, steps, source) -> float:
    """stop_lr = start_lr * rate ** (steps / decay_steps), the v1 decay rate turned into v2's."""
    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    checks = [
        ("learning_rate/decay_rate", rate, number(rate) and 0 < rate, "a positive number"),
        ("learning_rate/start_lr", start_lr, number(start_lr) and start_lr > 0,
         "a positive number"),
        ("learning_rate/decay_steps", decay_steps,
         number(decay_steps) and decay_steps > 0, "a positive integer"),
        ("training/stop_batch", steps, number(steps) and steps >= 0,
         "a non-negative integer (needed to convert learning_rate/decay_rate)"),
    ]
    problems = [Problem(path, f"expected {what}, got {value!r}")
                for path, value, ok, what in checks if not ok]
    if problems:
        raise ConfigError(source, problems)
    try:
        return math.exp(math.log(rate) * (steps / decay_steps)) * start_lr
    except OverflowError:
        raise ConfigError(source, [Problem("learning_rate/decay_rate", f"{rate!r} over "
                                           f"{steps} steps gives a learning rate out of range")]
                          ) from None
