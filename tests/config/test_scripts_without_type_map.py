"""Scripts without `model/type_map`, as DeePMD-kit's own test inputs are written: accepted and
normalised as DeePMD-kit 3.2 normalises them; the number of types is sel's length; the data's
types are checked against it as DeePMD-kit's trainer needs them. The two scripts (DeePMD-kit's
layouts): tests/reference/deepmd_inputs.py.
"""
from __future__ import annotations

import copy
import json
import shutil

import pytest
from test_deepmd_normalization import (DEEPMD_3X_ADDITIONS, DEEPMD_3X_TEBD_ADDITIONS,
                                       deepmd_normalize, deepmd_ok, differences,  # noqa: F401
                                       one_side_keys, order_differences)

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.data.script_check import check_against_data
from reference.deepmd_inputs import tebd_water_se_a_type, v1_water_se_a
from shared_paths import WATER

SCRIPTS = {"v1_water_se_a": v1_water_se_a, "tebd_water_se_a_type": tebd_water_se_a_type}


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_without_type_map_normalises_like_deepmd(deepmd_normalize, name):
    script = SCRIPTS[name]()
    ours = normalize(copy.deepcopy(script), f"{name}.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert "type_map" not in theirs["model"] and "type_map" not in ours["model"]
    assert differences(ours, theirs) == []
    assert order_differences(ours, theirs) == []
    only_ours, only_theirs = one_side_keys(ours, theirs)
    assert only_ours == {"training/training_data/set_prefix"}
    tebd = DEEPMD_3X_TEBD_ADDITIONS if "tebd" in name else set()
    assert only_theirs == (DEEPMD_3X_ADDITIONS | tebd) - {
        "training/validation_data/rglob_patterns"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_without_type_map_the_number_of_types_is_sel_length(name):
    model = build_config(normalize(SCRIPTS[name](), f"{name}.json")).model
    assert model.type_map == ()
    assert model.ntypes == len(model.descriptor.sel) == 2


def test_without_type_map_exclude_types_are_checked_against_sel_length():
    script = v1_water_se_a()
    script["model"]["descriptor"]["exclude_types"] = [[0, 2]]
    with pytest.raises(ConfigError) as info:
        normalize(script, "v1.json")
    (problem,) = info.value.problems
    assert problem.path == "model/descriptor/exclude_types/0"
    assert "model/descriptor/sel" in problem.message


@pytest.mark.slow
def test_empty_type_map_is_read_as_no_type_map(deepmd_normalize):
    """DeePMD-kit 3.2 accepts `type_map: []` and trains as without a type map
    (deepmd/tf/entrypoints/train.py: an empty model type map gives the data none)."""
    script = v1_water_se_a()
    script["model"]["type_map"] = []
    ours = normalize(copy.deepcopy(script), "v1.json")
    theirs = deepmd_ok(deepmd_normalize, script)
    assert ours["model"]["type_map"] == theirs["model"]["type_map"] == []
    assert differences(ours, theirs) == []
    model = build_config(ours).model
    assert model.type_map == () and model.ntypes == len(model.descriptor.sel) == 2


# ---------------------------------------------------------------------------------------------
# Against the data: DeePMD-kit's DPTrainer.build needs as many data types as model types


def settings(script, name="input.json"):
    return build_config(normalize(script, name))


def test_sel_auto_without_type_map_gets_one_entry_per_data_type():
    script = tebd_water_se_a_type([str(WATER / "data_0")])
    script["model"]["descriptor"]["sel"] = "auto"
    config, _ = check_against_data(settings(script), "input.json")
    assert config.model.type_map == ()
    assert len(config.model.descriptor.sel) == 2 == config.model.ntypes
    assert config.script["model"]["descriptor"]["sel"] == list(config.model.descriptor.sel)


def test_sel_longer_than_data_types_without_type_map_is_refused():
    """DeePMD-kit 3.2 fails at its first feed (t_natoms of 5 entries fed 4)."""
    script = tebd_water_se_a_type([str(WATER / "data_0")])
    script["model"]["descriptor"]["sel"] = [46, 92, 4]
    with pytest.raises(ConfigError) as info:
        check_against_data(settings(script), "input.json", skip_neighbor_stat=True)
    (problem,) = info.value.problems
    assert problem.path == "training/training_data/systems"
    assert "2 atom types" in problem.message and "model/type_map" in problem.message


def copy_system(src, dst, type_map_raw=None):
    dst.mkdir(parents=True)
    shutil.copy(src / "type.raw", dst / "type.raw")
    (dst / "set.000").symlink_to(src / "set.000")
    if type_map_raw is not None:
        (dst / "type_map.raw").write_text("\n".join(type_map_raw) + "\n")
    return dst


def test_data_with_more_types_than_sel_without_type_map_is_refused(tmp_path):
    """DeePMD-kit 3.2's DPTrainer.build: ValueError, the data have more types than the model."""
    system = copy_system(WATER / "data_0", tmp_path / "sys", ["O", "H", "C"])
    script = tebd_water_se_a_type([str(system)])
    with pytest.raises(ConfigError) as info:
        check_against_data(settings(script), "input.json", skip_neighbor_stat=True)
    assert "3 atom types" in info.value.problems[0].message


def test_training_systems_with_conflicting_type_map_raw_are_refused(tmp_path):
    """DeePMD-kit 3.2's DeepmdDataSystem._check_type_map_consistency: RuntimeError."""
    one = copy_system(WATER / "data_0", tmp_path / "one", ["O", "H"])
    two = copy_system(WATER / "data_1", tmp_path / "two", ["H", "O"])
    script = tebd_water_se_a_type([str(one), str(two)])
    with pytest.raises(ConfigError) as info:
        check_against_data(settings(script), "input.json", skip_neighbor_stat=True)
    (problem,) = info.value.problems
    assert problem.path == "training/training_data/systems"
    assert "inconsistent type map" in problem.message and "model/type_map" in problem.message


def test_script_without_type_map_writes_no_type_map(tmp_path):
    script = tebd_water_se_a_type([str(WATER / "data_0")])
    config, _ = check_against_data(settings(script), "input.json", skip_neighbor_stat=True)
    assert "type_map" not in json.loads(json.dumps(config.script))["model"]
