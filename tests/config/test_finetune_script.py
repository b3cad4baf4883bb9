"""The script of `dp train --finetune` (config/finetune.py), as DeePMD-kit 3.2's
replace_model_params_with_pretrained_model makes it: the pretrained type map and sections replace
the user's, the user's `trainable` stays, a type_embedding the pretrained model lacks is dropped
(kept frozen where the user froze it); types the pretrained model lacks are appended to its type
map (DPA-1 models alone, and only where the type embedding's first layer keeps its residual
rule); refusals name the key."""
import copy

import pytest

from deepmd_tebd.config.errors import ConfigError
from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.config.finetune import merge_pretrained
from deepmd_tebd.train.finetune import check_new_types

PRETRAINED = {"model": {
    "type_map": ["O", "H", "C"],
    "descriptor": {"type": "se_atten_v2", "sel": 40, "rcut": 6.0, "neuron": [4, 8]},
    "fitting_net": {"neuron": [16, 16], "trainable": True}}}


def _user(**model):
    return {"model": {"descriptor": {"type": "se_atten_v2", "sel": 20, "neuron": [2]},
                      "fitting_net": {"neuron": [8], "trainable": False}, **model},
            "training": {"numb_steps": 0}}


def test_the_pretrained_sections_replace_the_users_and_trainable_stays():
    script, user, new = merge_pretrained(_user(type_map=["H", "O"]), PRETRAINED, "in.json", "pre.pb")
    model = script["model"]
    assert user == ["H", "O"] and new == []
    assert model["type_map"] == ["O", "H", "C"]
    assert model["descriptor"] == PRETRAINED["model"]["descriptor"]
    assert model["fitting_net"] == {"neuron": [16, 16], "trainable": False}
    assert script["training"] == {"numb_steps": 0}


def test_an_absent_type_map_and_sections_come_from_the_pretrained_model():
    script, user, new = merge_pretrained({"model": {}}, PRETRAINED, "in.json", "pre.pb")
    assert user == [] and new == [] and script["model"] == PRETRAINED["model"]


@pytest.mark.parametrize("trainable, expected", [
    (True, None), (False, {"trainable": False, "activation_function": "None"})])
def test_a_type_embedding_the_pretrained_model_lacks_is_dropped(trainable, expected):
    user = _user(type_embedding={"neuron": [8], "trainable": trainable})
    script, _, _ = merge_pretrained(user, PRETRAINED, "in.json", "pre.pb")
    assert script["model"].get("type_embedding") == expected


@pytest.mark.parametrize("pretrained_model, type_map, message", [
    ({}, ["O", "O"], "model/type_map: --finetune: the type map names ['O'] more than once"),
    ({"descriptor": {"type": "se_e2_a", "sel": [4, 4, 4]}, "type_embedding": {}}, ["O", "N"],
     "names ['N'], which the pretrained model pre.pb does not have (['O', 'H', 'C']); new types "
     "extend DPA-1 models (se_atten, se_atten_v2) alone"),
    ({"descriptor": {"type": "se_e2_a", "sel": [4, 4, 4]}}, ["O"], "model: --finetune pre.pb: "
     "the pretrained model has no type embedding"),
    ({"fitting_net": {"type": "dipole"}}, ["O"], "model/fitting_net/type"),
])
def test_what_cannot_be_fine_tuned_is_refused_naming_the_key(pretrained_model, type_map,
                                                              message):
    pretrained = copy.deepcopy(PRETRAINED)
    pretrained["model"].update(pretrained_model)
    with pytest.raises(ConfigError) as err:
        merge_pretrained(_user(type_map=type_map), pretrained, "in.json", "pre.pb")
    assert message in str(err.value) and str(err.value).startswith("in.json: ")


def test_new_types_are_appended_to_the_pretrained_type_map():
    script, user, new = merge_pretrained(_user(type_map=["N", "H", "Si"]), PRETRAINED,
                                         "in.json", "pre.pb")
    assert script["model"]["type_map"] == ["O", "H", "C", "N", "Si"]
    assert user == ["N", "H", "Si"] and new == ["N", "Si"]


def _config(ntypes: int, neuron: list, econf: bool = False):
    script = copy.deepcopy(PRETRAINED)
    script["model"].update(type_map=["O", "H", "C", "N", "Si"][:ntypes], type_embedding={
        "neuron": neuron, "use_econf_tebd": econf})
    script.update(learning_rate={"start_lr": 1e-3}, loss={},
                  training={"training_data": {"systems": ["."]}, "numb_steps": 0})
    return build_config(normalize(script, source="in.json"))


@pytest.mark.parametrize("old, new, neuron, econf, refused", [
    (3, 4, [5], False, False),  # no residual for 3 or 4 inputs
    (3, 4, [6, 12], False, True),  # 3 -> 6 doubles: concat(x, x) + h; 4 -> 6 has none
    (2, 3, [2, 4], False, True),  # 2 -> 2: x + h
    (2, 3, [2, 4], True, False),  # electron configurations: the input width is not ntypes
])
def test_new_types_must_keep_the_type_embeddings_first_residual_rule(old, new, neuron, econf,
                                                                    refused):
    config = _config(new, neuron, econf)
    if not refused:
        check_new_types(config, old, "in.json")
        return
    with pytest.raises(ConfigError) as err:
        check_new_types(config, old, "in.json")
    assert str(err.value).startswith("in.json: ") and "model/type_embedding/neuron" in str(
        err.value)
