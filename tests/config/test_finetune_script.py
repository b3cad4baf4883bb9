"""The script of `dp train --finetune` (config/finetune.py), as DeePMD-kit 3.2's
replace_model_params_with_pretrained_model makes it: the pretrained type map and sections replace
the user's, the user's `trainable` stays, a type_embedding the pretrained model lacks is dropped
(kept frozen where the user froze it); refusals name the key."""
import copy

import pytest

from deepmd_tebd.config.errors import ConfigError
from deepmd_tebd.config.finetune import merge_pretrained

PRETRAINED = {"model": {
    "type_map": ["O", "H", "C"],
    "descriptor": {"type": "se_atten_v2", "sel": 40, "rcut": 6.0, "neuron": [4, 8]},
    "fitting_net": {"neuron": [16, 16], "trainable": True}}}


def _user(**model):
    return {"model": {"descriptor": {"type": "se_atten_v2", "sel": 20, "neuron": [2]},
                      "fitting_net": {"neuron": [8], "trainable": False}, **model},
            "training": {"numb_steps": 0}}


def test_the_pretrained_sections_replace_the_users_and_trainable_stays():
    script, user = merge_pretrained(_user(type_map=["H", "O"]), PRETRAINED, "in.json", "pre.pb")
    model = script["model"]
    assert user == ["H", "O"]
    assert model["type_map"] == ["O", "H", "C"]
    assert model["descriptor"] == PRETRAINED["model"]["descriptor"]
    assert model["fitting_net"] == {"neuron": [16, 16], "trainable": False}
    assert script["training"] == {"numb_steps": 0}


def test_an_absent_type_map_and_sections_come_from_the_pretrained_model():
    script, user = merge_pretrained({"model": {}}, PRETRAINED, "in.json", "pre.pb")
    assert user == [] and script["model"] == PRETRAINED["model"]


@pytest.mark.parametrize("trainable, expected", [
    (True, None), (False, {"trainable": False, "activation_function": "None"})])
def test_a_type_embedding_the_pretrained_model_lacks_is_dropped(trainable, expected):
    user = _user(type_embedding={"neuron": [8], "trainable": trainable})
    script, _ = merge_pretrained(user, PRETRAINED, "in.json", "pre.pb")
    assert script["model"].get("type_embedding") == expected


@pytest.mark.parametrize("pretrained_model, type_map, message", [
    ({}, ["O", "O"], "model/type_map: --finetune: the type map names ['O'] more than once"),
    ({}, ["O", "N"], "names ['N'], which the pretrained model pre.pb does not have"),
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
