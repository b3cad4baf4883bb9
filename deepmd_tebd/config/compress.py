"""The training scripts that `dp compress` reads from frozen graphs and writes back.

A graph's `train_attr/training_script` is the normalised script of whoever trained it; DeePMD-kit
3.x writes every option it knows with its default. Only the model matters to compression, so
`config_of_graph_script` keeps the `model` section, drops the 3.x options that are at DeePMD-kit
3.2's defaults (they do not change the model; deepmd/utils/argcheck.py), and takes the training
systems; any other 3.x option is refused by `normalize` with its key path.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Mapping

from .normalize import normalize
from .objects import Config, build_config

__all__ = ["config_of_graph_script", "descriptor_config_of_graph_script", "with_compress_section",
           "without_compress_section"]

# (path inside `model`, DeePMD-kit 3.2's default)
# the sections normalize requires, at their defaults: compression trains nothing
_NO_TRAINING = {"learning_rate": {}, "loss": {}}

_V3_MODEL_DEFAULTS = (
    (("pair_exclude_types",), []), (("atom_exclude_types",), []), (("preset_out_bias",), None),
    (("srtab_add_bias",), True), (("model_branch_alias",), []), (("info",), {}),
    (("bridging_method",), "None"), (("bridging_r_inner",), 0.5), (("bridging_r_outer",), 0.8),
    (("data_bias_nsample",), 10), (("descriptor", "env_protection"), 0.0),
    (("fitting_net", "dim_case_embd"), 0), (("fitting_net", "default_fparam"), None),
)


def _drop_defaults(model: dict) -> dict:
    model = copy.deepcopy(model)
    for path, default in _V3_MODEL_DEFAULTS:
        parent = model
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent and parent[path[-1]] == default:
            del parent[path[-1]]
    return model


def config_of_graph_script(script: Mapping, source: str) -> Config:
    """The settings of a graph's training script for rebuilding its model: the model section
    (3.x options at their defaults dropped) and the training systems; the returned Config keeps
    the script as the graph has it (`.script`)."""
    training = script.get("training", {}) if isinstance(script, Mapping) else {}
    data = training.get("training_data", {}) if isinstance(training, Mapping) else {}
    systems = data.get("systems", []) if isinstance(data, Mapping) else []
    minimal = {"model": _drop_defaults(script.get("model", {})),
               "training": {"training_data": {"systems": systems}, "numb_steps": 0},
               **copy.deepcopy(_NO_TRAINING)}
    config = build_config(normalize(minimal, source))
    return dataclasses.replace(config, script=copy.deepcopy(dict(script)))


def descriptor_config_of_graph_script(script: Mapping, source: str) -> Config:
    """The settings of a graph's training script reduced to its type map, its descriptor and,
    when it has one, a type_embedding section at its defaults: enough to build the descriptor
    when the other sections hold what this package does not read (ConfigError when even these
    do not normalise)."""
    model = script.get("model") if isinstance(script, Mapping) else None
    model = model if isinstance(model, Mapping) else {}
    reduced = {key: copy.deepcopy(model[key]) for key in ("type_map", "descriptor")
               if key in model}
    reduced["fitting_net"] = {}
    if model.get("type_embedding") is not None:
        reduced["type_embedding"] = {}
    return config_of_graph_script({"model": reduced,
                                   "training": {"training_data": {"systems": "."}}}, source)


def with_compress_section(config: Config, section: dict) -> Config:
    """The config with `model/compress` = section in its script and its model settings."""
    script = copy.deepcopy(dict(config.script))
    script["model"]["compress"] = dict(section)
    compress = build_config(normalize({"model": {**_drop_defaults(script["model"])},
                                       "training": {"training_data": {"systems": "."},
                                                    "numb_steps": 0},
                                       **copy.deepcopy(_NO_TRAINING)},
                                      "model/compress")).model.compress
    model = dataclasses.replace(config.model, compress=compress)
    return dataclasses.replace(config, model=model, script=script)


def without_compress_section(config: Config) -> Config:
    """The config without `model/compress` (in its script and its model settings)."""
    script = copy.deepcopy(dict(config.script))
    script.get("model", {}).pop("compress", None)
    model = dataclasses.replace(config.model, compress=None)
    return dataclasses.replace(config, model=model, script=script)
