"""A script checked against its data: missing systems, a type_map that does not cover the data,
sel "auto" resolved from the training data (as `dp train` and `dp check` do)."""
import json
import os
import subprocess
import sys

import pytest

from deepmd_tebd.config import ConfigError, load_settings
from deepmd_tebd.data.neighbor_stat import auto_sel, neighbor_stat
from deepmd_tebd.data.script_check import check_against_data
from shared_paths import WATER, INPUTS

EXAMPLE = INPUTS / "water_se_e2_a_tebd.json"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The DeePMD-kit example layout: input in se/, data in data/ (linked to the water data)."""
    (tmp_path / "data").symlink_to(WATER)
    (tmp_path / "se").mkdir()
    monkeypatch.chdir(tmp_path / "se")
    return tmp_path / "se"


def write(workdir, mutate=None, name="input.json"):
    data = json.loads(EXAMPLE.read_text())
    if mutate:
        mutate(data)
    path = workdir / name
    path.write_text(json.dumps(data))
    return str(path)


def problems_of(path, **kw):
    config = load_settings(path)
    with pytest.raises(ConfigError) as err:
        check_against_data(config, path, **kw)
    return [(p.path, p.message) for p in err.value.problems]


def test_example_passes_and_reports_min_neighbor_distance(workdir):
    path = write(workdir)
    config = load_settings(path)
    checked, min_dist = check_against_data(config, path)
    assert 0.5 < min_dist < 1.5  # an O-H bond
    assert checked.model.descriptor.sel == (46, 92)
    assert checked.script["model"]["descriptor"]["sel"] == [46, 92]


@pytest.mark.parametrize("sel,factor", [("auto", 1.1), ("auto:1.5", 1.5)])
def test_auto_sel_resolved_from_training_data(workdir, sel, factor):
    def set_sel(d):
        d["model"]["descriptor"]["sel"] = sel

    path = write(workdir, set_sel)
    config, _ = check_against_data(load_settings(path), path)
    _, max_size = neighbor_stat(["../data/data_0/", "../data/data_1/", "../data/data_2/"], 6.0,
                                ["O", "H"])
    assert config.script["model"]["descriptor"]["sel"] == auto_sel(max_size, factor)
    assert config.model.descriptor.sel == tuple(auto_sel(max_size, factor))
    assert all(s % 4 == 0 and s >= m * factor - 4 for s, m in zip(
        config.model.descriptor.sel, max_size))


def test_type_map_shorter_than_data_types_is_refused_at_type_map(workdir):
    def one_type(d):
        d["model"]["type_map"] = ["O"]
        d["model"]["descriptor"]["sel"] = [46]

    found = problems_of(write(workdir, one_type))
    assert found and all(path == "model/type_map" for path, _ in found)
    assert "type_map.raw" in found[0][1] and "'H'" in found[0][1]


def test_missing_system_is_refused_at_systems(workdir):
    def missing(d):
        d["training"]["validation_data"]["systems"] = ["../data/data_9"]

    found = problems_of(write(workdir, missing))
    assert found == [("training/validation_data/systems", found[0][1])]
    assert "data_9" in found[0][1]


def test_system_without_sets_is_refused_at_systems(workdir):
    empty = workdir.parent / "empty"
    empty.mkdir()
    (empty / "type.raw").write_text("0 1 1\n")

    def use_empty(d):
        d["training"]["training_data"]["systems"] = ["../empty"]

    found = problems_of(write(workdir, use_empty))
    assert found[0][0] == "training/training_data/systems" and "set.*" in found[0][1]


def test_auto_sel_with_skipped_neighbor_stat_is_refused(workdir):
    def auto(d):
        d["model"]["descriptor"]["sel"] = "auto"

    found = problems_of(write(workdir, auto), skip_neighbor_stat=True)
    assert found[0][0] == "model/descriptor/sel" and "--skip-neighbor-stat" in found[0][1]


@pytest.mark.slow
def test_dp_check_prints_resolved_sel_and_refuses_bad_data(workdir):
    def auto(d):
        d["model"]["descriptor"]["sel"] = "auto"

    dp = [sys.executable, "-m", "deepmd_tebd.cli", "check"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    good = subprocess.run(dp + [write(workdir, auto)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert good.returncode == 0, good.stderr
    assert isinstance(json.loads(good.stdout)["model"]["descriptor"]["sel"], list)
    assert "training data with max nbor size" in good.stderr

    def bad(d):
        d["model"]["type_map"] = ["O"]
        d["model"]["descriptor"]["sel"] = [46]

    refused = subprocess.run(dp + [write(workdir, bad, "bad.json")], capture_output=True,
                             text=True, timeout=300, env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "bad.json: model/type_map:" in refused.stderr


EBD_V2_EXAMPLE = INPUTS / "water_se_a_ebd_v2.json"


@pytest.mark.parametrize("extra, warned", [({}, True), ({"smooth_type_embedding": True}, False),
                                           ({"set_davg_zero": True}, False)])
def test_discontinuous_se_a_ebd_v2_is_warned_once_naming_the_key(workdir, caplog, extra, warned):
    data = json.loads(EBD_V2_EXAMPLE.read_text())
    data["model"]["descriptor"].update(extra)
    path = workdir / "input.json"
    path.write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="deepmd_tebd"):
        check_against_data(load_settings(path), str(path), skip_neighbor_stat=True)
    found = [r.getMessage() for r in caplog.records if "discontinuous" in r.getMessage()]
    assert len(found) == (1 if warned else 0)
    if warned:
        assert "smooth_type_embedding" in found[0] and "set_davg_zero" in found[0]


def test_se_e2_a_tebd_is_not_warned_discontinuous(workdir, caplog):
    with caplog.at_level("WARNING", logger="deepmd_tebd"):
        check_against_data(load_settings(write(workdir)), "input.json", skip_neighbor_stat=True)
    assert not [r for r in caplog.records if "discontinuous" in r.getMessage()]


def test_a_root_searched_recursively_is_checked_like_a_list(workdir):
    def root(d):
        d["training"]["training_data"]["systems"] = "../data"

    path = write(workdir, root, "root.json")
    config, min_dist = check_against_data(load_settings(path), path)
    assert config.training.training_data.systems == "../data"
    every_system = [f"../data/data_{k}" for k in range(4)]  # what the root search finds
    assert min_dist == neighbor_stat(every_system, 6.0, ["O", "H"])[0]
