"""`training/mixed_precision` is accepted with DeePMD-kit's keys and defaults (deepmd/utils/
argcheck.py, mixed_precision_args: output_prec default float32, compute_prec required) and refused,
naming the key, where DeePMD-kit's trainer refuses it (deepmd/tf/train/trainer.py,
DPTrainer._init_param: only [float32, float16/bfloat16])."""
import copy

import pytest

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.config.objects import MixedPrecisionConfig

SCRIPT = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "se_e2_a", "sel": [4, 8]},
                    "fitting_net": {}},
          "learning_rate": {"type": "exp"},
          "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}


def with_mixed(section):
    script = copy.deepcopy(SCRIPT)
    script["training"]["mixed_precision"] = section
    return script


@pytest.mark.parametrize("compute", ["float16", "bfloat16"])
def test_mixed_precision_is_accepted_with_output_prec_defaulting_to_float32(compute):
    config = build_config(normalize(with_mixed({"compute_prec": compute})))
    assert config.training.mixed_precision == MixedPrecisionConfig("float32", compute)


def test_no_mixed_precision_section_means_full_precision():
    assert build_config(normalize(copy.deepcopy(SCRIPT))).training.mixed_precision is None


@pytest.mark.parametrize("section, path, fragment", [
    # DeePMD-kit >= 2.2.3's own example writes output_prec float64, which its trainer refuses
    ({"compute_prec": "float16", "output_prec": "float64"}, "training/mixed_precision/output_prec",
     "output_prec float32 only"),
    ({"compute_prec": "float32"}, "training/mixed_precision/compute_prec",
     "float16 or bfloat16 only"),
    ({"output_prec": "float32"}, "training/mixed_precision/compute_prec", "required"),
])
def test_mixed_precision_deepmd_refuses_is_refused_naming_the_key(section, path, fragment):
    with pytest.raises(ConfigError) as info:
        normalize(with_mixed(section), "input.json")
    problems = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and fragment in m for p, m in problems), problems
