"""Keys DeePMD-kit 3.x added, read with the meaning DeePMD-kit 3.2's TensorFlow backend gives
them; an absent key keeps this package's DeePMD-kit 2.2 meaning, and the normalised script
(out.json) holds the 3.x keys the user gave and no others."""
from __future__ import annotations

import copy

import pytest

from deepmd_tebd.config import ConfigError, build_config, normalize


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
