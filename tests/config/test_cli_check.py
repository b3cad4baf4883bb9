"""`dp check INPUT` and `dp doc-train-input` as a user runs them (a subprocess)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepmd_tebd.config import ConfigError, load_config
from deepmd_tebd.config import schema as S
from shared_paths import INPUTS

# DeePMD-kit's example inputs, in ../shared beside the checkout
EXAMPLES = ["water_se_e2_a.json", "water_se_e2_a_tebd.json"]

# The keys of DeePMD-kit 2.2.5's se_e2_a descriptor (and the alias of axis_neuron)
SE_E2_A_KEYS = ["type", "sel", "rcut", "rcut_smth", "neuron", "axis_neuron",
                "activation_function", "resnet_dt", "type_one_side", "precision", "trainable",
                "seed", "exclude_types", "set_davg_zero"]


def dp(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepmd_tebd.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def example(name: str) -> dict:
    path = INPUTS / name
    if not path.is_file():
        pytest.skip(f"DeePMD-kit's example input {path} is not there")
    return json.loads(path.read_text())


@pytest.fixture
def misspelled(tmp_path) -> Path:
    """The tebd example with three problems: two misspelled keys and a negative step count."""
    script = example("water_se_e2_a_tebd.json")
    script["model"]["descriptor"]["rcut_smoth"] = script["model"]["descriptor"].pop("rcut_smth")
    script["training"]["disp_frq"] = script["training"].pop("disp_freq")
    script["learning_rate"]["decay_steps"] = -1
    path = tmp_path / "misspelled.json"
    path.write_text(json.dumps(script, indent=2))
    return path


def test_check_of_misspelled_script_prints_one_line_per_problem_and_exits_1(misspelled):
    result = dp("check", str(misspelled))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    with pytest.raises(ConfigError) as info:
        load_config(misspelled)
    expected = [p.line(str(misspelled)) for p in info.value.problems]
    assert len(expected) >= 3
    lines = result.stderr.splitlines()
    assert lines == expected
    assert f"{misspelled}: model/descriptor/rcut_smoth: unknown key 'rcut_smoth'; did you mean " \
           "'rcut_smth'?" in lines
    assert any(line.startswith(f"{misspelled}: training/disp_frq: ") for line in lines)
    assert any(line.startswith(f"{misspelled}: learning_rate/decay_steps: ") for line in lines)


@pytest.mark.parametrize("name", EXAMPLES)
def test_check_of_good_script_prints_normalised_json_and_exits_0(name):
    example(name)
    result = dp("check", "--skip-data", str(INPUTS / name))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    printed = json.loads(result.stdout)
    assert printed == load_config(INPUTS / name)
    assert result.stdout.rstrip("\n") == json.dumps(printed, indent=4)  # indent 4, key order kept


def test_check_of_yaml_script_prints_the_same_json_as_of_json_script(tmp_path):
    import yaml

    script = example("water_se_e2_a_tebd.json")
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump(script, sort_keys=False))
    from_yaml = dp("check", "--skip-data", str(path))
    from_json = dp("check", "--skip-data", str(INPUTS / "water_se_e2_a_tebd.json"))
    assert from_yaml.returncode == from_json.returncode == 0
    assert from_yaml.stdout == from_json.stdout


@pytest.mark.parametrize("content, fragment", [
    ("{\n  \"model\": {,\n}\n", "invalid JSON at line 2"),
    (None, "cannot be read"),
])
def test_check_of_unreadable_script_prints_the_reason_without_traceback(tmp_path, content,
                                                                        fragment):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    result = dp("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"{path}: ") and fragment in result.stderr


def test_check_through_installed_dp_script(tmp_path, misspelled):
    script = Path(sys.executable).with_name("dp")
    if not script.is_file():
        pytest.skip(f"no dp script next to {sys.executable}")
    bad = subprocess.run([str(script), "check", str(misspelled)], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.splitlines()) >= 3
    good = subprocess.run([str(script), "check", "--skip-data",
                           str(INPUTS / "water_se_e2_a_tebd.json")],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == load_config(INPUTS / "water_se_e2_a_tebd.json")


# ---------------------------------------------------------------------------------------------
# dp doc-train-input


def test_doc_train_input_mentions_every_se_e2_a_key():
    result = dp("doc-train-input")
    assert result.returncode == 0, result.stderr
    for key in SE_E2_A_KEYS:
        assert f"model/descriptor/{key} " in result.stdout, key
    assert "n_axis_neuron" in result.stdout


def test_doc_train_input_mentions_every_key_the_schema_accepts():
    """Every accepted key (refused ones aside) of every section is documented by its path."""
    text = dp("doc-train-input").stdout

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if "x-unsupported" in sub:
                continue
            here = f"{path}/{key}" if path else key
            yield here
            yield from walk(sub, here)

    sections = [(S.ROOT, "")] + [(variant, "/".join(where))
                                 for where, implemented in S.VARIANTS.items()
                                 for variant in implemented.values()]
    missing = [p for node, path in sections for p in walk(node, path) if f"{p} (" not in text]
    assert missing == []


def test_doc_train_input_json_is_valid_json_with_the_se_e2_a_keys():
    result = dp("doc-train-input", "--out-type", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    descriptor = doc["variants"]["model/descriptor"]["se_e2_a"]["properties"]
    assert set(SE_E2_A_KEYS) <= set(descriptor)
    assert descriptor["axis_neuron"]["x-alias"] == ["n_axis_neuron"]


def test_doc_train_input_json_schema_is_a_valid_json_schema():
    from jsonschema import Draft202012Validator

    doc = json.loads(dp("doc-train-input", "--out-type", "json").stdout)
    Draft202012Validator.check_schema(doc["schema"])
    for implemented in doc["variants"].values():
        for variant in implemented.values():
            Draft202012Validator.check_schema(variant)


def test_doc_train_input_json_schema_accepts_the_normalised_examples():
    """The documented schema (variant sections plugged in) validates a normalised script."""
    from jsonschema import Draft202012Validator

    doc = json.loads(dp("doc-train-input", "--out-type", "json").stdout)
    for name in EXAMPLES:
        example(name)
        config = load_config(INPUTS / name)
        schema = copy.deepcopy(doc["schema"])
        for where, implemented in doc["variants"].items():
            *parents, key = where.split("/")
            node, data = schema, config
            for part in parents:
                node, data = node["properties"][part], data[part]
            node["properties"][key] = implemented[data[key]["type"]]
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(config)]
        assert errors == [], name
