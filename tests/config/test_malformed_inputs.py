"""Malformed input scripts are refused with a ConfigError whose problems name the key path.

Each case is DeePMD-kit's tebd example with one mutation; the expected problem is given by its
key path and a fragment of its message.
"""
from __future__ import annotations

import copy
import json

import pytest

from deepmd_tebd.config import ConfigError, load_config, normalize



# ---------------------------------------------------------------------------------------------
# Mutations: each returns a function that changes a script in place


def _parent(script: dict, path: str) -> tuple[dict, str]:
    *keys, last = path.split("/")
    node = script
    for key in keys:
        node = node[key]
    return node, last


def set_(path: str, value):
    def mutate(script):
        node, key = _parent(script, path)
        node[key] = copy.deepcopy(value)
    return mutate


def drop(path: str):
    def mutate(script):
        node, key = _parent(script, path)
        del node[key]
    return mutate


def rename(path: str, new_name: str):
    def mutate(script):
        node, key = _parent(script, path)
        node[new_name] = node.pop(key)
    return mutate


def both(*mutations):
    def mutate(script):
        for m in mutations:
            m(script)
    return mutate


def refused(script: dict, source: str = "input.json") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        normalize(script, source)
    err = info.value
    assert err.problems, "a ConfigError without problems"
    return err


def assert_names(err: ConfigError, path: str, fragment: str) -> None:
    found = [(p.path, p.message) for p in err.problems]
    assert any(p.path == path and fragment in p.message for p in err.problems), \
        f"no problem at {path!r} containing {fragment!r}; problems: {found}"


def apply(tebd: dict, mutate) -> dict:
    script = copy.deepcopy(tebd)
    mutate(script)
    return script


# ---------------------------------------------------------------------------------------------
# Misspelled keys, at every level: refused with the key path and a did-you-mean suggestion

MISSPELLED = [
    # (level, key path, misspelling, suggested key)
    ("top_level", "loss", "losss", "loss"),
    ("model", "model/type_embedding", "type_embeding", "type_embedding"),
    ("descriptor", "model/descriptor/rcut_smth", "rcut_smoth", "rcut_smth"),
    ("fitting_net", "model/fitting_net/resnet_dt", "resnetdt", "resnet_dt"),
    ("type_embedding", "model/type_embedding/precision", "precison", "precision"),
    ("learning_rate", "learning_rate/decay_steps", "decay_step", "decay_steps"),
    ("loss", "loss/limit_pref_f", "limit_pref_force", "limit_pref_f"),
    ("training", "training/save_freq", "save_frq", "save_freq"),
    ("training_data", "training/training_data/batch_size", "batchsize", "batch_size"),
    ("validation_data", "training/validation_data/numb_btch", "numb_btchs", "numb_btch"),
]


@pytest.mark.parametrize("path, wrong, right", [c[1:] for c in MISSPELLED],
                         ids=[c[0] for c in MISSPELLED])
def test_misspelled_key_is_refused_with_suggestion(tebd, path, wrong, right):
    err = refused(apply(tebd, rename(path, wrong)))
    wrong_path = f"{path.rpartition('/')[0]}/{wrong}".lstrip("/")
    assert_names(err, wrong_path, f"unknown key {wrong!r}")
    assert_names(err, wrong_path, f"did you mean {right!r}")


def test_misspelled_required_key_is_refused_as_unknown_and_as_missing(tebd):
    err = refused(apply(tebd, rename("training/validation_data/systems", "system")))
    assert_names(err, "training/validation_data/system", "did you mean 'systems'")
    assert_names(err, "training/validation_data/systems", "required key is missing")


# ---------------------------------------------------------------------------------------------
# Values of the wrong type

WRONG_TYPES = [
    ("string_rcut", set_("model/descriptor/rcut", "6.0"), "model/descriptor/rcut",
     "expected a number"),
    ("string_start_lr", set_("learning_rate/start_lr", "1e-3"), "learning_rate/start_lr",
     "expected a number"),
    ("float_neuron_entry", set_("model/descriptor/neuron", [25, 50.5, 100]),
     "model/descriptor/neuron/1", "expected an integer"),
    # DeePMD-kit (dargs) refuses a float for an int key even when its value is whole
    ("whole_float_neuron_entry", set_("model/descriptor/neuron", [25, 50.0, 100]),
     "model/descriptor/neuron/1", "integer"),
    ("whole_float_numb_steps", set_("training/numb_steps", 1e6), "training/numb_steps",
     "integer"),
    ("bool_given_as_0", set_("model/descriptor/resnet_dt", 0), "model/descriptor/resnet_dt",
     "expected true or false"),
    ("bool_given_as_1", set_("model/type_embedding/trainable", 1),
     "model/type_embedding/trainable", "expected true or false"),
    ("bool_for_integer", set_("training/numb_steps", True), "training/numb_steps",
     "expected an integer"),
    ("list_for_descriptor_dict", set_("model/descriptor", [{"type": "se_e2_a"}]),
     "model/descriptor", "expected a mapping"),
    ("list_for_training_data_dict", set_("training/training_data", ["../data/data_0/"]),
     "training/training_data", "expected a mapping"),
    ("list_for_type_embedding_dict", set_("model/type_embedding", [2, 4, 8]),
     "model/type_embedding", "expected a mapping"),
    ("sel_string_other_than_auto", set_("model/descriptor/sel", "all"), "model/descriptor/sel",
     '"auto"'),
    ("sel_auto_with_bad_factor", set_("model/descriptor/sel", "auto:x"),
     "model/descriptor/sel", '"auto:FACTOR"'),
    ("type_map_entry_not_string", set_("model/type_map", ["O", 1]), "model/type_map/1",
     "expected a string"),
    ("systems_number", set_("training/training_data/systems", 3),
     "training/training_data/systems", "system directories"),
    ("batch_size_mixed_for_a_descriptor_of_type_blocks",
     set_("training/training_data/batch_size", "mixed:4"), "training/training_data/batch_size",
     "need se_atten"),
    ("batch_size_unknown_rule", set_("training/training_data/batch_size", "mix:4"),
     "training/training_data/batch_size", '"mixed:N"'),
    ("unknown_activation", set_("model/descriptor/activation_function", "tanhh"),
     "model/descriptor/activation_function", "did you mean 'tanh'"),
    ("unknown_precision", set_("model/type_embedding/precision", "float128"),
     "model/type_embedding/precision", "'float64'"),
    ("null_model", set_("model", None), "model", "expected a mapping"),
    ("null_training", set_("training", None), "training", "expected a mapping"),
    ("number_training", set_("training", 3), "training", "expected a mapping"),
    ("list_training", set_("training", ["systems"]), "training", "expected a mapping"),
]


@pytest.mark.parametrize("mutate, path, fragment", [c[1:] for c in WRONG_TYPES],
                         ids=[c[0] for c in WRONG_TYPES])
def test_value_of_wrong_type_is_refused_naming_the_key(tebd, mutate, path, fragment):
    assert_names(refused(apply(tebd, mutate)), path, fragment)


# ---------------------------------------------------------------------------------------------
# Negative or zero sizes

NEGATIVE_SIZES = [
    ("descriptor_neuron", set_("model/descriptor/neuron", [25, -50, 100]),
     "model/descriptor/neuron/1", ">= 1"),
    ("fitting_neuron", set_("model/fitting_net/neuron", [240, 0, 240]),
     "model/fitting_net/neuron/1", ">= 1"),
    ("type_embedding_neuron", set_("model/type_embedding/neuron", [-2, 4, 8]),
     "model/type_embedding/neuron/0", ">= 1"),
    ("axis_neuron", set_("model/descriptor/axis_neuron", -1), "model/descriptor/axis_neuron",
     ">= 1"),
    ("numb_steps", set_("training/numb_steps", -5), "training/numb_steps", ">= 0"),
    ("batch_size", set_("training/validation_data/batch_size", -1),
     "training/validation_data/batch_size", "a positive integer"),
    ("batch_size_entry", set_("training/training_data/batch_size", [1, -1, 1]),
     "training/training_data/batch_size", "a positive integer"),
    ("disp_freq", set_("training/disp_freq", -1), "training/disp_freq", ">= 1"),
    ("decay_steps", set_("learning_rate/decay_steps", 0), "learning_rate/decay_steps", ">= 1"),
    ("numb_btch", set_("training/validation_data/numb_btch", 0),
     "training/validation_data/numb_btch", ">= 1"),
    ("rcut", set_("model/descriptor/rcut", -6.0), "model/descriptor/rcut", "> 0"),
    ("sel_entry", set_("model/descriptor/sel", [46, -1]), "model/descriptor/sel", "non-negative"),
]


@pytest.mark.parametrize("mutate, path, fragment", [c[1:] for c in NEGATIVE_SIZES],
                         ids=[c[0] for c in NEGATIVE_SIZES])
def test_negative_size_is_refused_naming_the_key(tebd, mutate, path, fragment):
    assert_names(refused(apply(tebd, mutate)), path, fragment)


# ---------------------------------------------------------------------------------------------
# Values that contradict each other

INCONSISTENT = [
    ("rcut_smth_above_rcut", set_("model/descriptor/rcut_smth", 7.0),
     "model/descriptor/rcut_smth", "must not exceed rcut"),
    ("axis_neuron_above_last_neuron", set_("model/descriptor/axis_neuron", 101),
     "model/descriptor/axis_neuron", "must not exceed the last embedding width (100)"),
    ("duplicate_type_map_names", set_("model/type_map", ["O", "O"]), "model/type_map",
     "unique"),
    ("sel_shorter_than_type_map", set_("model/descriptor/sel", [46]), "model/descriptor/sel",
     "one entry per type (2"),
    ("sel_longer_than_type_map", set_("model/descriptor/sel", [46, 92, 10]),
     "model/descriptor/sel", "one entry per type (2"),
    ("exclude_types_beyond_type_map", set_("model/descriptor/exclude_types", [[0, 2]]),
     "model/descriptor/exclude_types/0", "below 2"),
    ("fitting_trainable_length", set_("model/fitting_net/trainable", [True, False]),
     "model/fitting_net/trainable", "expected 4 entries"),
    ("batch_size_per_system_length", set_("training/training_data/batch_size", [1, 2]),
     "training/training_data/batch_size", "one entry per system (3)"),
    ("sys_probs_length", set_("training/training_data/sys_probs", [0.5, 0.5]),
     "training/training_data/sys_probs", "one entry per system (3)"),
    ("gf_prefactor_without_coordinates", set_("loss/start_pref_gf", 1.0),
     "loss/numb_generalized_coord", ">= 1"),
]


@pytest.mark.parametrize("mutate, path, fragment", [c[1:] for c in INCONSISTENT],
                         ids=[c[0] for c in INCONSISTENT])
def test_contradicting_values_are_refused_naming_the_key(tebd, mutate, path, fragment):
    assert_names(refused(apply(tebd, mutate)), path, fragment)


# ---------------------------------------------------------------------------------------------
# Descriptor, fitting, loss and learning-rate types: only the implemented ones

VARIANTS = [
    ("unknown_descriptor", "model/descriptor/type", "se_e2_aa",
     ["not implemented", "did you mean 'se_e2_a'", "implemented: se_e2_a"]),
    ("se_e3_descriptor", "model/descriptor/type", "se_e3",
     ["not implemented", "implemented: se_e2_a", "se_atten (alias dpa1)"]),
    ("hybrid_descriptor", "model/descriptor/type", "hybrid",
     ["not implemented", "implemented: se_e2_a"]),
    ("se_e2_r_descriptor", "model/descriptor/type", "se_e2_r",
     ["not implemented", "implemented: se_e2_a"]),
    ("dpa2_descriptor", "model/descriptor/type", "dpa2",
     ["not implemented", "implemented: se_e2_a"]),
    ("dipole_fitting", "model/fitting_net/type", "dipole",
     ["not implemented", "implemented: ener"]),
    ("tensor_loss", "loss/type", "tensor", ["not implemented", "implemented: ener"]),
    ("cosine_learning_rate", "learning_rate/type", "cosine",
     ["not implemented", "implemented: exp"]),
    ("frozen_model", "model/type", "frozen", ["not implemented", "implemented: standard"]),
    ("numeric_descriptor_type", "model/descriptor/type", 1, ["implemented: se_e2_a"]),
]


@pytest.mark.parametrize("path, tag, fragments", [c[1:] for c in VARIANTS],
                         ids=[c[0] for c in VARIANTS])
def test_unimplemented_type_is_refused_with_implemented_list(tebd, path, tag, fragments):
    err = refused(apply(tebd, set_(path, tag)))
    for fragment in fragments:
        assert_names(err, path, fragment)


# ---------------------------------------------------------------------------------------------
# Missing required keys

MISSING = [
    ("model", "model"),
    ("training", "training"),
    ("learning_rate", "learning_rate"),
    ("numb_steps", "training/numb_steps"),
    ("descriptor_type", "model/descriptor/type"),
    ("training_data_systems", "training/training_data/systems"),
    ("validation_data_systems", "training/validation_data/systems"),
    ("training_data", "training/training_data"),
    ("descriptor", "model/descriptor"),
    ("fitting_net", "model/fitting_net"),
]  # model/type_map is optional, as in DeePMD-kit: tests/config/test_no_type_map.py


@pytest.mark.parametrize("path", [c[1] for c in MISSING], ids=[c[0] for c in MISSING])
def test_missing_required_key_is_refused_naming_it(tebd, path):
    assert_names(refused(apply(tebd, drop(path))), path, "required key is missing")


# ---------------------------------------------------------------------------------------------
# Refused features: compression, DeePMD-kit 3.x options, other unsupported keys


def test_compress_with_type_embedding_is_refused_as_not_tabulable(tebd):
    err = refused(apply(tebd, set_("model/compress", {"model_file": "frozen_model.pb"})))
    assert_names(err, "model/compress", "type embedding cannot be tabulated")


def test_compress_section_of_plain_se_e2_a_is_accepted_and_built(tebd):
    from deepmd_tebd.config.objects import build_config

    section = {"model_file": "frozen_model.pb", "min_nbor_dist": 0.9,
               "table_config": [5, 0.01, 0.1, -1]}
    script = apply(tebd, both(drop("model/type_embedding"), set_("model/compress", section)))
    compress = build_config(normalize(script, "input.json")).model.compress
    assert (compress.model_file, compress.min_nbor_dist, compress.table_config) == (
        "frozen_model.pb", 0.9, (5.0, 0.01, 0.1, -1))


def test_compress_with_descriptor_resnet_dt_is_refused(tebd):
    mutate = both(drop("model/type_embedding"), set_("model/descriptor/resnet_dt", True),
                  set_("model/compress", {"model_file": "frozen_model.pb"}))
    assert_names(refused(apply(tebd, mutate)), "model/compress", "resnet_dt false")


UNSUPPORTED = [
    ("pair_table", "model/use_srtab", "tab.txt", "not supported"),
    ("multi_task_data_dict", "training/data_dict", {}, "multi-task"),
    ("multi_task_loss_dict", "loss_dict", {}, "multi-task"),
    ("spin", "model/spin", {}, "not supported"),
    ("aparam_as_mask", "model/fitting_net/use_aparam_as_mask", True, "not supported"),
]


@pytest.mark.parametrize("path, value, fragment", [c[1:] for c in UNSUPPORTED],
                         ids=[c[0] for c in UNSUPPORTED])
def test_unsupported_deepmd_feature_is_refused_naming_it(tebd, path, value, fragment):
    assert_names(refused(apply(tebd, set_(path, value))), path, fragment)


# ---------------------------------------------------------------------------------------------
# Aliases and layouts that conflict

BOTH_NAMES = [
    ("stop_batch", "training", "numb_steps", "stop_batch", 10),
    ("n_neuron", "model/fitting_net", "neuron", "n_neuron", [10]),
    ("n_axis_neuron", "model/descriptor", "axis_neuron", "n_axis_neuron", 4),
    ("numb_batch", "training/validation_data", "numb_btch", "numb_batch", 2),
    ("auto_prob_style", "training/training_data", "auto_prob", "auto_prob_style",
     "prob_uniform"),
]


@pytest.mark.parametrize("section, canonical, alias, value", [c[1:] for c in BOTH_NAMES],
                         ids=[c[0] for c in BOTH_NAMES])
def test_alias_and_canonical_key_together_are_refused(tebd, section, canonical, alias, value):
    mutate = both(set_(f"{section}/{canonical}", value), set_(f"{section}/{alias}", value))
    err = refused(apply(tebd, mutate))
    assert_names(err, f"{section}/{alias}", f"both {canonical!r} and its alias {alias!r}")


@pytest.mark.parametrize("section, canonical, alias, value", [c[1:] for c in BOTH_NAMES],
                         ids=[c[0] for c in BOTH_NAMES])
def test_alias_given_with_canonical_key_is_not_also_called_unknown(tebd, section, canonical,
                                                                   alias, value):
    """The alias is a known key: one problem says both names are given, no other calls it
    unknown (with itself as the suggestion)."""
    mutate = both(set_(f"{section}/{canonical}", value), set_(f"{section}/{alias}", value))
    err = refused(apply(tebd, mutate))
    assert [p for p in err.problems if "unknown key" in p.message] == []


def test_v1_and_v2_data_keys_together_are_refused(tebd):
    err = refused(apply(tebd, set_("training/systems", ["../data/data_0/"])))
    assert_names(err, "training", "Both v1 (training/systems) and v2 (training/training_data)")


V1_BROKEN = [
    # a v1 script (data keys in training) whose learning_rate has decay_rate, with one fault;
    # the number of steps may be named by its v1 name or by the v2 one
    ("stop_batch_string", {"stop_batch": "many"}, {},
     {"training/stop_batch", "training/numb_steps"}),
    ("stop_batch_missing", {}, {}, {"training/stop_batch", "training/numb_steps"}),
    ("decay_rate_string", {"stop_batch": 1000}, {"decay_rate": "0.95"},
     {"learning_rate/decay_rate"}),
    ("start_lr_null", {"stop_batch": 1000}, {"start_lr": None}, {"learning_rate/start_lr"}),
    ("decay_steps_zero", {"stop_batch": 1000}, {"decay_steps": 0},
     {"learning_rate/decay_steps"}),
    ("decay_rate_negative", {"stop_batch": 1000}, {"decay_rate": -0.95, "decay_steps": 3000},
     {"learning_rate/decay_rate"}),
    ("decay_rate_overflowing", {"stop_batch": 1000}, {"decay_rate": 1e300, "decay_steps": 1},
     {"learning_rate/decay_rate"}),
]


@pytest.mark.parametrize("training, lr, paths", [c[1:] for c in V1_BROKEN],
                         ids=[c[0] for c in V1_BROKEN])
def test_v1_script_with_bad_decay_rate_inputs_is_refused_naming_the_key(tebd, training, lr,
                                                                        paths):
    script = copy.deepcopy(tebd)
    data = script["training"].pop("training_data")
    script["training"].pop("numb_steps")
    script["training"].update(systems=data["systems"], **training)
    script["learning_rate"] = {"type": "exp", "start_lr": 1e-3, "decay_steps": 5000,
                               "decay_rate": 0.95, **lr}
    err = refused(script)
    assert {p.path for p in err.problems} & paths, [(p.path, p.message) for p in err.problems]


# ---------------------------------------------------------------------------------------------
# Files


def test_yaml_syntax_error_is_refused_with_line_number(tmp_path):
    path = tmp_path / "input.yaml"
    path.write_text("model:\n  type_map: [O, H\n  descriptor: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.path == ""
    assert "invalid YAML" in problem.message and "line 3" in problem.message
    assert str(info.value).startswith(f"{path}: invalid YAML")


def test_json_syntax_error_is_refused_with_line_number(tmp_path, tebd):
    text = json.dumps(tebd, indent=4).splitlines()
    assert text[4].strip() == '"O",'
    text[4] += ","  # `"O",,` on line 5
    path = tmp_path / "input.json"
    path.write_text("\n".join(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.path == ""
    assert "invalid JSON" in problem.message and "line 5" in problem.message
    assert str(info.value).startswith(f"{path}: invalid JSON")


def test_unsupported_file_suffix_is_refused(tmp_path, tebd):
    path = tmp_path / "input.txt"
    path.write_text(json.dumps(tebd))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "JSON (*.json) or YAML (*.yaml, *.yml)" in problem.message


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "no_such_input.json"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "cannot be read" in problem.message and "No such file" in problem.message
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("text, shown", [("- model\n- training\n", "a list"), ("", "null"),
                                         ("42\n", "an integer")])
def test_yaml_document_that_is_not_a_mapping_is_refused(tmp_path, text, shown):
    path = tmp_path / "input.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "must be a mapping" in info.value.problems[0].message
    assert shown in info.value.problems[0].message


def test_problem_lines_name_file_and_key_path(tmp_path, tebd):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(apply(tebd, set_("model/descriptor/rcut", "6.0"))))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: model/descriptor/rcut: expected a number, got \"6.0\" " \
                              "(a string)"


# ---------------------------------------------------------------------------------------------
# Several problems at once


def test_script_with_several_problems_reports_all_of_them(tebd):
    mutate = both(rename("model/descriptor/rcut", "rcutt"),
                  set_("model/fitting_net/neuron", [240, "wide"]),
                  set_("training/numb_steps", -1),
                  set_("loss/f_use_norm", True),
                  set_("model/type_embedding/resnet_dt", 1),
                  set_("learning_rate/start_lrr", 1e-3))
    err = refused(apply(tebd, mutate), "many.json")
    paths = {p.path for p in err.problems}
    assert {"model/descriptor/rcutt", "model/fitting_net/neuron/1", "training/numb_steps",
            "loss/f_use_norm", "model/type_embedding/resnet_dt",
            "learning_rate/start_lrr"} <= paths
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems) >= 6
    assert all(line.startswith("many.json: ") for line in lines)
    assert len(set(err.problems)) == len(err.problems)  # each problem once


def test_script_with_several_contradictions_reports_all_of_them(tebd):
    mutate = both(set_("model/descriptor/rcut_smth", 7.0),
                  set_("model/descriptor/axis_neuron", 200),
                  set_("model/descriptor/sel", [46]),
                  set_("model/type_map", ["O", "O"]))
    err = refused(apply(tebd, mutate))
    assert {p.path for p in err.problems} == {"model/descriptor/rcut_smth",
                                              "model/descriptor/axis_neuron",
                                              "model/descriptor/sel", "model/type_map"}
