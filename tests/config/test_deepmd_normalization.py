"""The normalised input script equals DeePMD-kit's own normalisation.

DeePMD-kit 3.2.0 (`deepmd.utils.compat.update_deepmd_input` + `deepmd.utils.argcheck.normalize`)
runs in its own virtual environment, in a subprocess: deepmd is never imported here. The two
normalisations are compared key by key, values and value types (an int stays an int, as in
out.json), and the keys only one side writes are listed exactly: DeePMD-kit 3.x added keys that
DeePMD-kit 2.2 (which deepmd_tebd follows) does not have, and dropped one that 2.2 has.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from deepmd_tebd.config import ConfigError, load_config, normalize
from reference.deepmd_oracle import require_oracle, run_oracle
from shared_paths import INPUTS

# DeePMD-kit's example inputs, in ../shared beside the checkout
EXAMPLES = ["water_se_e2_a.json", "water_se_e2_a_tebd.json", "water_se_a_ebd_v2.json"]
# ... those with a model/type_embedding section
TEBD_EXAMPLES = {"water_se_e2_a_tebd.json", "water_se_a_ebd_v2.json"}

# Normalises each script of a JSON list with DeePMD-kit; one result per script.
_ORACLE_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from deepmd.utils.argcheck import normalize
from deepmd.utils.compat import update_deepmd_input
results = []
for script in json.load(open(sys.argv[1])):
    try:
        results.append({"ok": normalize(update_deepmd_input(script, warning=False))})
    except Exception as err:
        results.append({"error": f"{type(err).__name__}: {err}"})
json.dump(results, open(sys.argv[2], "w"), default=float)
"""

# Keys DeePMD-kit 3.2 writes (with their defaults) that DeePMD-kit 2.2 does not know: 3.x added
# them. deepmd_tebd follows 2.2, so its normalised script has none of them.
DEEPMD_3X_ADDITIONS = {
    "optimizer",
    "validating",
    "model/info",
    "model/atom_exclude_types",
    "model/pair_exclude_types",
    "model/preset_out_bias",
    "model/bridging_method",
    "model/bridging_r_inner",
    "model/bridging_r_outer",
    "model/model_branch_alias",
    "model/descriptor/env_protection",
    "model/fitting_net/default_fparam",
    "model/fitting_net/dim_case_embd",
    "learning_rate/decay_rate",
    "learning_rate/smooth",
    "learning_rate/stop_lr_ratio",
    "learning_rate/warmup_steps",
    "learning_rate/warmup_ratio",
    "learning_rate/warmup_start_factor",
    "loss/f_use_norm",
    "loss/huber_delta",
    "loss/intensive_ener_virial",
    "loss/start_pref_h",
    "loss/limit_pref_h",
    "loss/loss_func",
    "loss/use_default_pf",
    "loss/use_huber",
    "training/acc_freq",
    "training/change_bias_after_training",
    "training/ckpt_keep_ratio",
    "training/disp_avg",
    "training/ema_ckpt_keep",
    "training/ema_decay",
    "training/enable_compile",
    "training/enable_ema",
    "training/enable_tf32",
    "training/neighbor_graph_method",
    "training/save_dir",
    "training/stat_file_mode",
    "training/zero_stage",
    "training/training_data/min_pair_dist",
    "training/training_data/rglob_patterns",
    "training/validation_data/rglob_patterns",
}
# ... and in the type_embedding section, present in the tebd example only
DEEPMD_3X_TEBD_ADDITIONS = {
    "model/type_embedding/use_econf_tebd",
    "model/type_embedding/use_tebd_bias",
}
# `set_prefix` is a DeePMD-kit 2.2 data key (default "set"; dp train ignores it); 3.x dropped it.
OUR_ONLY_KEYS = {
    "training/training_data/set_prefix",
    "training/validation_data/set_prefix",
}

# The keys whose values must be DeePMD-kit's, named one by one (the recursive comparison below
# covers every shared key; this list makes sure these are written by both sides).
COMPARED_KEYS = [
    *(f"model/descriptor/{k}" for k in ("sel", "rcut", "rcut_smth", "neuron", "axis_neuron",
                                        "type_one_side", "resnet_dt", "activation_function",
                                        "precision")),
    *(f"model/fitting_net/{k}" for k in ("neuron", "resnet_dt", "activation_function",
                                         "precision", "numb_fparam", "numb_aparam", "rcond")),
    *(f"learning_rate/{k}" for k in ("type", "start_lr", "stop_lr", "decay_steps")),
    "loss/type",
    *(f"loss/{when}_pref_{term}" for term in ("e", "f", "v", "ae", "pf")
      for when in ("start", "limit")),
    *(f"training/{k}" for k in ("numb_steps", "seed", "disp_file", "disp_freq", "save_freq",
                                "save_ckpt", "disp_training", "time_training")),
    *(f"training/{section}/{k}" for section in ("training_data", "validation_data")
      for k in ("systems", "batch_size", "auto_prob", "sys_probs")),
    "training/validation_data/numb_btch",
]
COMPARED_TEBD_KEYS = [f"model/type_embedding/{k}" for k in ("neuron", "resnet_dt",
                                                            "activation_function", "precision",
                                                            "trainable")]


def example(name: str) -> dict:
    path = INPUTS / name
    if not path.is_file():
        pytest.skip(f"DeePMD-kit's example input {path} is not there")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def deepmd_normalize(tmp_path_factory):
    """A function: list of scripts -> DeePMD-kit's results ({"ok": dict} or {"error": text})."""
    require_oracle()
    workdir = tmp_path_factory.mktemp("deepmd_normalize")
    script = workdir / "normalize.py"
    script.write_text(_ORACLE_SCRIPT)

    def run(scripts: list[dict]) -> list[dict]:
        src, dst = workdir / "in.json", workdir / "out.json"
        src.write_text(json.dumps(scripts))
        proc = run_oracle([script, src, dst], workdir, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(dst.read_text())

    return run


def deepmd_ok(deepmd_normalize, script: dict) -> dict:
    (result,) = deepmd_normalize([script])
    assert "ok" in result, f"DeePMD-kit refuses the script: {result['error']}"
    return result["ok"]


def normalized_by_both(deepmd_normalize, name: str) -> tuple[dict, dict]:
    """DeePMD-kit's example input `name` normalised by us and by DeePMD-kit."""
    raw = example(name)
    return normalize(copy.deepcopy(raw), name), deepmd_ok(deepmd_normalize, raw)


def at(data: dict, path: str):
    for key in path.split("/"):
        data = data[key]
    return data


def key_paths(data, prefix="") -> set[str]:
    """Every key path of the nested dicts (lists are values, not descended into)."""
    paths = set()
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{prefix}/{key}" if prefix else key
            paths.add(here)
            paths |= key_paths(value, here)
    return paths


def one_side_keys(ours: dict, theirs: dict) -> tuple[set[str], set[str]]:
    """(keys only we write, keys only DeePMD-kit writes), the topmost such key of each subtree."""
    only_ours = {p for p in key_paths(ours) - key_paths(theirs)
                 if "/" not in p or p.rsplit("/", 1)[0] in key_paths(theirs)}
    only_theirs = {p for p in key_paths(theirs) - key_paths(ours)
                   if "/" not in p or p.rsplit("/", 1)[0] in key_paths(ours)}
    return only_ours, only_theirs


def differences(ours, theirs, path="") -> list[str]:
    """Where the shared keys differ in value or in JSON type (int vs float vs bool)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in ours:
            if key in theirs:
                found += differences(ours[key], theirs[key], f"{path}/{key}" if path else key)
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for k, (a, b) in enumerate(zip(ours, theirs))
                for d in differences(a, b, f"{path}/{k}")]
    if type(ours) is not type(theirs) or ours != theirs:
        return [f"{path}: ours {ours!r}, DeePMD-kit {theirs!r}"]
    return []


def order_differences(ours, theirs, path="") -> list[str]:
    """Where the shared keys of a dict come in another order (out.json keeps DeePMD's order)."""
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return []
    mine = [k for k in ours if k in theirs]
    found = [] if mine == [k for k in theirs if k in ours] else [
        f"{path or '/'}: ours {mine}, DeePMD-kit {[k for k in theirs if k in ours]}"]
    for key in mine:
        found += order_differences(ours[key], theirs[key], f"{path}/{key}" if path else key)
    return found


def alias_variant() -> dict:
    """The tebd example written with the alias names DeePMD-kit accepts."""
    script = example("water_se_e2_a_tebd.json")
    model, training = script["model"], script["training"]
    model["descriptor"]["type"] = "se_a"
    model["descriptor"]["n_axis_neuron"] = model["descriptor"].pop("axis_neuron")
    model["fitting_net"]["n_neuron"] = model["fitting_net"].pop("neuron")
    training["stop_batch"] = training.pop("numb_steps")
    training["validation_data"]["numb_batch"] = training["validation_data"].pop("numb_btch")
    training["training_data"]["auto_prob_style"] = "prob_uniform"
    training["validation_data"]["sys_weights"] = [1.0]
    return script


def v1_variant() -> dict:
    """The tebd example in the v1 layout: data keys in `training`, decay_rate, numb_test."""
    script = example("water_se_e2_a_tebd.json")
    return {
        "model": script["model"],
        "learning_rate": {"type": "exp", "start_lr": 0.001, "decay_steps": 5000,
                          "decay_rate": 0.95},
        "loss": script["loss"],
        "training": {
            "systems": ["../data/data_0/", "../data/data_1/"],
            "set_prefix": "set",
            "batch_size": [1, 2],
            "auto_prob_style": "prob_uniform",
            "stop_batch": 400000,
            "numb_test": 10,
            "seed": 1,
            "disp_file": "lcurve.out",
            "disp_freq": 100,
            "save_freq": 1000,
            "save_ckpt": "model.ckpt",
            "disp_training": True,
            "time_training": True,
        },
    }


def minimal_script() -> dict:
    """The fewest keys a v2 script needs: everything else is a default."""
    return {
        "model": {"type_map": ["O", "H"], "descriptor": {"type": "se_e2_a"}, "fitting_net": {}},
        # DeePMD-kit 3.2 requires start_lr and defaults stop_lr to 5e-8; 2.2 defaults them to
        # 1e-3 and 1e-8 (test_minimal_script_gets_2_2_learning_rate_defaults)
        "learning_rate": {"start_lr": 1e-3, "stop_lr": 1e-8},
        "training": {"training_data": {"systems": ["../data/data_0/"]}, "numb_steps": 10},
    }


# ---------------------------------------------------------------------------------------------
# The example inputs


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_input_loads_unchanged(name):
    raw = example(name)
    config = load_config(INPUTS / name)
    assert config["model"]["type_map"] == raw["model"]["type_map"]
    assert ("type_embedding" in config["model"]) == (name in TEBD_EXAMPLES)
    assert not [p for p in key_paths(config) if p.rsplit("/", 1)[-1].startswith("_")]
    assert json.loads((INPUTS / name).read_text()) == raw  # the file is only read


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_named_keys_of_example_equal_deepmd_normalization(deepmd_normalize, name):
    ours, theirs = normalized_by_both(deepmd_normalize, name)
    keys = COMPARED_KEYS + (COMPARED_TEBD_KEYS if name in TEBD_EXAMPLES else [])
    for path in keys:
        mine, dp = at(ours, path), at(theirs, path)
        assert type(mine) is type(dp) and mine == dp, f"{path}: ours {mine!r}, DeePMD-kit {dp!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shared_key_of_example_equals_deepmd_normalization(deepmd_normalize, name):
    ours, theirs = normalized_by_both(deepmd_normalize, name)
    assert differences(ours, theirs) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_shared_keys_of_example_keep_deepmd_key_order(deepmd_normalize, name):
    ours, theirs = normalized_by_both(deepmd_normalize, name)
    assert order_differences(ours, theirs) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_keys_only_one_side_writes_are_the_2_2_vs_3x_differences(deepmd_normalize, name):
    ours, theirs = normalized_by_both(deepmd_normalize, name)
    only_ours, only_theirs = one_side_keys(ours, theirs)
    tebd_keys = DEEPMD_3X_TEBD_ADDITIONS if name in TEBD_EXAMPLES else set()
    expected = DEEPMD_3X_ADDITIONS | tebd_keys
    assert only_ours == OUR_ONLY_KEYS
    assert only_theirs == expected


@pytest.mark.slow
def test_every_key_deepmd_3x_adds_is_accepted_at_deepmd_kits_value_and_kept(deepmd_normalize):
    """A script written by DeePMD-kit 3.x carries its added keys at their defaults: each,
    alone in the script, is accepted and kept as DeePMD-kit wrote it (no 3.x default is added
    where the script has none)."""
    raw = example("water_se_e2_a_tebd.json")
    theirs = deepmd_ok(deepmd_normalize, raw)
    wrong = []
    for path in sorted(DEEPMD_3X_ADDITIONS | DEEPMD_3X_TEBD_ADDITIONS):
        script = copy.deepcopy(raw)
        parent, key = path.rpartition("/")[::2]
        (at(script, parent) if parent else script)[key] = at(theirs, path)
        try:
            ours = normalize(script, "3x.json")
        except ConfigError as err:
            wrong.append(f"{path}: {[(p.path, p.message) for p in err.problems]}")
            continue
        if at(ours, path) != at(theirs, path):
            wrong.append(f"{path}: {at(ours, path)!r} != {at(theirs, path)!r}")
        others = (DEEPMD_3X_ADDITIONS | DEEPMD_3X_TEBD_ADDITIONS) - {path}
        added = [p for p in others if "/" in p and _has(ours, p)]
        if added:
            wrong.append(f"{path}: also added {added}")
    assert wrong == []


def _has(script, path) -> bool:
    parent, key = path.rpartition("/")[::2]
    try:
        return key in at(script, parent)
    except (KeyError, TypeError):
        return False


# ---------------------------------------------------------------------------------------------
# The same scripts as YAML, with aliases, in the v1 layout, reduced to the required keys


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_converted_to_yaml_loads_to_the_same_dict(tmp_path, name):
    raw = example(name)
    for suffix in (".yaml", ".yml"):
        path = tmp_path / (Path(name).stem + suffix)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        from_yaml = load_config(path)
        from_json = load_config(INPUTS / name)
        assert from_yaml == from_json
        assert json.dumps(from_yaml) == json.dumps(from_json)  # same key order, same types


@pytest.mark.slow
def test_alias_names_normalise_like_deepmd(deepmd_normalize):
    script = alias_variant()
    ours = normalize(copy.deepcopy(script), "alias.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert ours["model"]["descriptor"]["type"] == "se_e2_a"
    assert ours["model"]["descriptor"]["axis_neuron"] == 16
    assert ours["model"]["fitting_net"]["neuron"] == [240, 240, 240]
    assert ours["training"]["numb_steps"] == 1000000
    assert ours["training"]["validation_data"]["numb_btch"] == 3
    aliases = {"n_axis_neuron", "n_neuron", "stop_batch", "numb_batch", "auto_prob_style",
               "sys_weights"}
    assert not {p.rsplit("/", 1)[-1] for p in key_paths(ours)} & aliases
    assert differences(ours, theirs) == []
    assert order_differences(ours, theirs) == []
    only_ours, _ = one_side_keys(ours, theirs)
    assert only_ours == OUR_ONLY_KEYS


def test_alias_names_normalise_like_the_canonical_names():
    canonical = example("water_se_e2_a_tebd.json")
    canonical["training"]["training_data"]["auto_prob"] = "prob_uniform"
    canonical["training"]["validation_data"]["sys_probs"] = [1.0]
    ours = normalize(alias_variant(), "alias.json")
    assert ours == normalize(canonical, "canonical.json")


@pytest.mark.slow
def test_v1_layout_converts_like_deepmd(deepmd_normalize):
    script = v1_variant()
    ours = normalize(copy.deepcopy(script), "v1.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert ours["training"]["training_data"]["systems"] == script["training"]["systems"]
    assert ours["training"]["training_data"]["batch_size"] == [1, 2]
    assert ours["training"]["training_data"]["auto_prob"] == "prob_uniform"
    assert ours["training"]["numb_steps"] == 400000
    assert "numb_test" not in ours["training"]
    assert "decay_rate" not in ours["learning_rate"]
    # stop_lr to the last bit: test_v1_decay_rate_gives_deepmd_stop_lr_to_the_last_bit
    assert ours["learning_rate"]["stop_lr"] == pytest.approx(theirs["learning_rate"]["stop_lr"],
                                                             rel=1e-12)
    assert [d for d in differences(ours, theirs) if not d.startswith("learning_rate/stop_lr:")] \
        == []
    only_ours, _ = one_side_keys(ours, theirs)
    assert only_ours == {"training/training_data/set_prefix"}


@pytest.mark.slow
def test_v1_layout_converts_with_deepmd_key_order(deepmd_normalize):
    """DeePMD-kit appends the new training_data section after the remaining training keys."""
    script = v1_variant()
    ours = normalize(copy.deepcopy(script), "v1.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert order_differences(ours, theirs) == []


@pytest.mark.slow
def test_v1_decay_rate_gives_deepmd_stop_lr_to_the_last_bit(deepmd_normalize):
    """DeePMD-kit (2.2 and 3.x) computes exp(log(decay_rate) * stop_batch / decay_steps) * start_lr;
    out.json, and the learning-rate schedule, carry exactly that float."""
    script = v1_variant()
    ours = normalize(copy.deepcopy(script), "v1.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert ours["learning_rate"]["stop_lr"] == theirs["learning_rate"]["stop_lr"]


def test_v1_stop_lr_is_the_decayed_start_lr():
    ours = normalize(v1_variant(), "v1.json")
    assert ours["learning_rate"]["stop_lr"] == pytest.approx(0.001 * 0.95 ** (400000 / 5000),
                                                             rel=1e-12)


@pytest.mark.slow
def test_minimal_script_gets_deepmd_defaults(deepmd_normalize):
    script = {**minimal_script(), "loss": {}}
    ours = normalize(copy.deepcopy(script), "minimal.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert differences(ours, theirs) == []
    only_ours, only_theirs = one_side_keys(ours, theirs)
    assert only_ours == {"training/training_data/set_prefix"}
    # validation_data defaults to null on both sides, so its 3.x keys are absent too
    assert only_theirs == DEEPMD_3X_ADDITIONS - {"training/validation_data/rglob_patterns"}


@pytest.mark.slow
def test_absent_loss_section_is_not_written_like_deepmd(deepmd_normalize):
    """DeePMD-kit (2.2 and 3.x) declares `loss` optional without a default: a script without it
    normalises to a script without it (the trainer then uses the ener defaults)."""
    script = minimal_script()
    ours = normalize(copy.deepcopy(script), "minimal.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert "loss" not in theirs
    assert "loss" not in ours


def test_minimal_script_gets_2_2_learning_rate_defaults():
    script = minimal_script()
    script["learning_rate"] = {}
    lr = normalize(script, "minimal.json")["learning_rate"]
    assert lr == {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 5000,
                  "scale_by_worker": "linear"}
