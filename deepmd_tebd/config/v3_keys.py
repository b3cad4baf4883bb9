"""The keys DeePMD-kit 3.x added to the input script, as its out.json writes them (at their
defaults): each accepted at its default and kept as given (no default is filled in), and another
value ignored or refused with DeePMD-kit's reason, after what DeePMD-kit 3.2's TensorFlow backend
does with it (config/normalize.py applies the rule); the keys it implements are plain keys of
the declaration (config/schema.py)."""
from __future__ import annotations

from ..electron_configuration import ELEMENTS
from .errors import Problem
from .schema_builders import boolean, key

__all__ = ["ENER_LOSS_KEYS", "NO_DEFAULT", "PYTORCH_TRAINING_KEYS", "econf_problems", "ignored",
           "schedule_problems", "v3", "warmup_length", "warmup_problems"]

NO_DEFAULT = "x-no-default"  # a 3.x key without a default: any value given is not the default
_TF_RAISES = "DeePMD-kit's TensorFlow backend raises for it"


def v3(type_, default, when_other: str, reason: str = "", doc: str = ""):
    """A key DeePMD-kit 3.x added (its out.json writes it at its default): accepted at
    `default` and kept as given (no default is filled in); another value is, by `when_other`,
    "ignore"d (DeePMD-kit's TensorFlow backend ignores it: one warning names it) or "refuse"d
    with `reason` (its TensorFlow backend raises)."""
    reason = reason or {"ignore": "ignored by DeePMD-kit's TensorFlow backend"}.get(
        when_other, _TF_RAISES)
    return key(type_, doc=doc or reason,
               **{"x-v3": {"default": default, "when_other": when_other, "reason": reason}})


def ignored(type_, default=NO_DEFAULT):
    """A 3.x key that DeePMD-kit's TensorFlow backend ignores (PyTorch-only, metadata)."""
    return v3(type_, default, "ignore")


def econf_problems(type_map) -> list[Problem]:
    """use_econf_tebd reads each type's electron configuration: the types must be elements."""
    path = "model/type_embedding/use_econf_tebd"
    if not type_map:
        return [Problem(path, "needs model/type_map: each type's element gives its electron "
                        "configuration")]
    unknown = [t for t in type_map if t not in ELEMENTS]
    return [Problem(path, f"model/type_map names {unknown}, which are not element symbols "
                    "(H to Og): their electron configurations are unknown")] if unknown else []


def warmup_length(warmup_steps: int, warmup_ratio, numb_steps: int) -> int:
    """The learning rate's warm-up steps: warmup_steps, or warmup_ratio * numb_steps."""
    return warmup_steps if warmup_ratio is None else int(warmup_ratio * numb_steps)


def warmup_problems(warmup: int, numb_steps: int, where: str) -> list[Problem]:
    """A warm-up must end before training does (DeePMD-kit raises ValueError)."""
    if not warmup or warmup < numb_steps:
        return []
    return [Problem("learning_rate/warmup_steps", f"{warmup} warm-up steps must be fewer than "
                    f"{where} ({numb_steps})")]


def schedule_problems(data: dict, given: set) -> list[Problem]:
    """DeePMD-kit 3.x's learning-rate keys against each other and numb_steps (`given`: the keys
    of the script's learning_rate before defaults were filled in); a stop_lr that only the
    default filled in gives way to stop_lr_ratio."""
    lr, steps = data.get("learning_rate", {}), data["training"].get("numb_steps")
    problems = _steps_problems(data["training"])
    if lr.get("stop_lr_ratio") is not None:
        if "stop_lr" in given:
            problems.append(Problem("learning_rate/stop_lr_ratio", "give stop_lr or "
                                    "stop_lr_ratio, not both (DeePMD-kit raises ValueError)"))
        lr.pop("stop_lr", None)
    if lr.get("warmup_steps") and lr.get("warmup_ratio") is not None:
        problems.append(Problem("learning_rate/warmup_ratio", "give warmup_steps or "
                                "warmup_ratio, not both (DeePMD-kit raises ValueError)"))
    elif steps is not None:  # with numb_epoch, once the data give numb_steps
        problems += warmup_problems(warmup_length(lr.get("warmup_steps", 0),
                                                  lr.get("warmup_ratio"), steps), steps,
                                    "training/numb_steps")
    return (problems + _huber_problems(data.get("loss") or {}) + _change_bias_problems(data)
            + _stat_file_problems(data["training"]))


def _stat_file_problems(training: dict) -> list[Problem]:
    """stat_file_mode "read" names a file to read (DeePMD-kit raises ValueError without)."""
    if training.get("stat_file_mode") != "read" or training.get("stat_file"):
        return []
    return [Problem("training/stat_file_mode", "\"read\" needs training/stat_file")]


def _change_bias_problems(data: dict) -> list[Problem]:
    """change_bias_after_training evaluates the model on frames without their parameters."""
    fitting = data["model"].get("fitting_net", {})
    if not data["training"].get("change_bias_after_training") or not (
            fitting.get("numb_fparam") or fitting.get("numb_aparam")):
        return []
    return [Problem("training/change_bias_after_training", "not yet with frame or atomic "
                    "parameters (model/fitting_net/numb_fparam, numb_aparam)")]


def _steps_problems(training: dict) -> list[Problem]:
    """Exactly one of numb_steps and numb_epoch (DeePMD-kit 3.x), as DeePMD-kit requires."""
    given = [key for key in ("numb_steps", "numb_epoch") if training.get(key) is not None]
    if len(given) == 1:
        return []
    if given:
        return [Problem("training/numb_steps", "give numb_steps or numb_epoch: both are given")]
    return [Problem("training/numb_steps", "required key is missing (or give numb_epoch)")]


def _huber_problems(loss: dict) -> list[Problem]:
    """use_huber beside the terms DeePMD-kit's TensorFlow backend has no Huber form of."""
    if not loss.get("use_huber"):
        return []
    others = [key for key in ("start_pref_pf", "limit_pref_pf", "start_pref_gf", "limit_pref_gf")
              if loss.get(key)] + (["relative_f"] if loss.get("relative_f") is not None else [])
    return [Problem("loss/use_huber", f"not with {', '.join(others)}: DeePMD-kit's TensorFlow "
                    "backend raises RuntimeError (no Huber loss of atom-prefactor, generalised "
                    "or relative forces)")] if others else []


# PyTorch-only training keys, which DeePMD-kit's TensorFlow backend ignores
PYTORCH_TRAINING_KEYS = {
    "save_dir": ignored(["string", "null"], None), "enable_ema": ignored("boolean", False),
    "ema_decay": ignored("number", 0.999), "ema_ckpt_keep": ignored(["integer", "null"], None),
    "ckpt_keep_ratio": ignored(["number", "null"], None),
    "gradient_max_norm": ignored(["number", "null"]), "zero_stage": ignored("integer", 0),
    "acc_freq": ignored("integer", 1), "disp_avg": ignored("boolean", False),
    "enable_compile": ignored("boolean", False), "enable_tf32": ignored("boolean", False),
    "neighbor_graph_method": ignored("string", "auto"),
    "stat_file_mode": {**ignored("string", "update"), "enum": ["read", "update"]},
}


# the keys DeePMD-kit 3.x added to the ener loss
ENER_LOSS_KEYS = {
    "f_use_norm": v3("boolean", False, "refuse", "DeePMD-kit's TensorFlow backend raises "
                     "NotImplementedError for it"),
    "loss_func": v3("string", "mse", "refuse", "only mse: DeePMD-kit's TensorFlow backend "
                    "raises NotImplementedError for another loss function"),
    "use_default_pf": v3("boolean", False, "refuse", "DeePMD-kit's TensorFlow backend raises "
                         "NotImplementedError for it"),
    "use_huber": boolean(doc="Huber loss of the residuals (energy and virial per atom) "
                         "instead of squares (DeePMD-kit 3.x)"),
    "huber_delta": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                               "minItems": 3, "maxItems": 3}],
                    "x-expect": "a positive number, or three (energy, force, virial)",
                    "description": "the Huber loss's delta (DeePMD-kit 3.x; absent: 0.01)"},
    "intensive_ener_virial": boolean(doc="divide the energy and virial squares by N^2 "
                                     "instead of N (DeePMD-kit 3.x)"),
    "start_pref_h": ignored("number", 0.0), "limit_pref_h": ignored("number", 0.0),
}
