"""The se_a_ebd_v2 descriptor's section: se_e2_a's keys with DeePMD-kit's defaults
(deepmd/utils/argcheck.py: descrpt_se_a_ebd_v2_args), its alias, env_protection only as 0, this
package's smooth_type_embedding, the type embedding DeePMD-kit builds when the script has no
type_embedding section, and model/compress refused."""
import copy

import pytest

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.config.schema import SE_A_EBD_V2, SE_E2_A


def script(descriptor, type_embedding=True):
    model = {"type_map": ["O", "H"], "descriptor": descriptor, "fitting_net": {}}
    if type_embedding:
        model["type_embedding"] = {"neuron": [2, 4, 8], "seed": 1}
    return {"model": model, "learning_rate": {"type": "exp"},
            "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}


def problems(data):
    with pytest.raises(ConfigError) as err:
        normalize(data, "in.json")
    return [(p.path, p.message) for p in err.value.problems]


def test_se_a_ebd_v2_has_the_keys_and_defaults_of_se_e2_a():
    ours = normalize(script({"type": "se_a_ebd_v2"}))["model"]["descriptor"]
    plain = normalize(script({"type": "se_e2_a"}))["model"]["descriptor"]
    assert ours == {**plain, "type": "se_a_ebd_v2"}
    assert ours["type_one_side"] is False
    extra = set(SE_A_EBD_V2["properties"]) - set(SE_E2_A["properties"])
    assert extra == {"smooth_type_embedding"}


def test_alias_se_a_tpe_v2_normalises_to_se_a_ebd_v2():
    data = normalize(script({"type": "se_a_tpe_v2", "sel": [4, 8]}))
    assert data["model"]["descriptor"]["type"] == "se_a_ebd_v2"
    assert build_config(data).model.descriptor.stripped_type_embedding


def test_env_protection_is_accepted_only_as_zero():
    normalize(script({"type": "se_a_ebd_v2", "env_protection": 0.0}))
    found = problems(script({"type": "se_a_ebd_v2", "env_protection": 0.1}))
    assert [p for p, _ in found] == ["model/descriptor/env_protection"]


def test_smooth_type_embedding_defaults_to_false_and_is_not_written():
    data = normalize(script({"type": "se_a_ebd_v2"}))
    assert "smooth_type_embedding" not in data["model"]["descriptor"]
    assert build_config(data).model.descriptor.smooth_type_embedding is False
    data = normalize(script({"type": "se_a_ebd_v2", "smooth_type_embedding": True}))
    assert build_config(data).model.descriptor.smooth_type_embedding is True


def test_smooth_type_embedding_is_unknown_to_se_e2_a():
    found = problems(script({"type": "se_e2_a", "smooth_type_embedding": True}))
    assert found[0][0] == "model/descriptor/smooth_type_embedding"
    assert "unknown key" in found[0][1]


def test_without_type_embedding_section_a_default_linear_one_is_built():
    """deepmd/tf/model/model.py (StandardModel): the type_embedding section's defaults with no
    activation, since the descriptor needs explicit types."""
    model = build_config(normalize(script({"type": "se_a_ebd_v2"}, type_embedding=False))).model
    assert model.type_embedding is not None
    assert model.type_embedding.neuron == (8,)
    assert model.type_embedding.activation_function == "none"
    assert model.type_embedding.seed is None
    plain = build_config(normalize(script({"type": "se_e2_a"}, type_embedding=False))).model
    assert plain.type_embedding is None


@pytest.mark.parametrize("tebd", [True, False])
def test_compress_section_with_se_a_ebd_v2_is_refused_with_the_reason(tebd):
    data = script({"type": "se_a_ebd_v2"}, type_embedding=tebd)
    data["model"]["compress"] = {"model_file": "frozen_model.pb"}
    found = problems(copy.deepcopy(data))
    assert [p for p, _ in found] == ["model/compress"]
    assert "se_a_ebd_v2" in found[0][1] and "type embedding" in found[0][1]


def test_smooth_type_embedding_with_rcut_smth_zero_is_refused():
    found = problems(script({"type": "se_a_ebd_v2", "rcut_smth": 0.0,
                             "smooth_type_embedding": True}))
    assert [p for p, _ in found] == ["model/descriptor/smooth_type_embedding"]
