"""The se_atten (alias dpa1) and se_atten_v2 sections read as DeePMD-kit 3.2's TensorFlow backend
reads them: its defaults (se_atten_v2: strip, smooth, set_davg_zero false), a list sel summed,
stripped_type_embedding overriding tebd_input_mode, and what it refuses refused with the key path
(scaling_factor, normalize, temperature, concat_output_tebd, env_protection; se_atten_v2's
fixed keys); model/type_map required."""
import copy

import pytest

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.config.descriptors import SeAttenConfig

SCRIPT = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "se_atten", "sel": 30},
                    "fitting_net": {}},
          "learning_rate": {"type": "exp"},
          "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}


def settings(**descriptor):
    script = copy.deepcopy(SCRIPT)
    script["model"]["descriptor"].update(descriptor)
    return build_config(normalize(script, "in.json")).model


def test_deepmd_kits_defaults_and_the_alias():
    desc = settings(type="dpa1").descriptor
    assert isinstance(desc, SeAttenConfig) and desc.type == "se_atten"
    assert (desc.sel, desc.neuron, desc.axis_neuron, desc.attn, desc.attn_layer) == (
        (30,), (10, 20, 40), 4, 128, 2)
    assert (desc.tebd_input_mode, desc.smooth, desc.set_davg_zero, desc.ln_eps) == (
        "concat", False, True, 1e-3)
    v2 = settings(type="se_atten_v2").descriptor
    assert (v2.tebd_input_mode, v2.smooth, v2.set_davg_zero) == ("strip", True, False)


def test_a_list_sel_is_summed_and_stripped_type_embedding_overrides_the_mode():
    listed = settings(sel=[10, 20]).descriptor
    assert listed.sel == (30,)
    assert any("sel [10, 20] is summed to 30" in w and "keeps only the first entry, 10" in w
               for w in listed.warnings())
    assert not any("summed" in w for w in settings(sel=30).descriptor.warnings())
    assert settings(tebd_input_mode="concat",
                    stripped_type_embedding=True).descriptor.tebd_input_mode == "strip"
    assert settings(smooth_type_embdding=True).descriptor.smooth  # DeePMD-kit's misspelt alias


def test_without_a_type_embedding_section_the_default_one_has_no_biases():
    tebd = settings().type_embedding
    assert (tebd.neuron, tebd.activation_function, tebd.use_tebd_bias) == ((8,), "none", False)


@pytest.mark.parametrize("key, value", [("scaling_factor", 2.0), ("normalize", False),
                                        ("temperature", 1.0), ("concat_output_tebd", False),
                                        ("env_protection", 1.0)])
def test_what_deepmd_kits_tensorflow_backend_refuses_is_refused(key, value):
    with pytest.raises(ConfigError) as err:
        settings(**{key: value})
    assert [p.path for p in err.value.problems] == [f"model/descriptor/{key}"]


@pytest.mark.parametrize("key, value", [("tebd_input_mode", "concat"),
                                        ("smooth_type_embedding", False),
                                        ("stripped_type_embedding", True)])
def test_se_atten_v2_refuses_the_keys_it_fixes(key, value):
    with pytest.raises(ConfigError, match=f"model/descriptor/{key}"):
        settings(type="se_atten_v2", **{key: value})


def test_a_type_map_is_required():
    script = copy.deepcopy(SCRIPT)
    del script["model"]["type_map"]
    with pytest.raises(ConfigError, match="model/type_map: required by se_atten"):
        normalize(script, "in.json")
