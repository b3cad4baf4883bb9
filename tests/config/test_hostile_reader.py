"""The input reader bounds what a script may be before anything walks it: nesting 10,000 deep
(JSON or YAML) is refused naming the file, a 2 KB YAML anchor bomb is refused within 100 MB, a
value that contains itself is refused, NaN and infinity are refused at their key path, and a
message never expands a whole value."""
from __future__ import annotations

import copy
import json
import tracemalloc

import pytest

from deepmd_tebd.config import ConfigError, load_config, load_settings, normalize, read_script

@pytest.mark.parametrize("suffix, text", [
    (".json", "[" * 10_000 + "]" * 10_000),
    (".yaml", "a: " + "[" * 10_000 + "]" * 10_000),
    (".json", '{"a":' * 10_000 + "1" + "}" * 10_000),
    (".yaml", "".join(f"{' ' * i}k{i}:\n" for i in range(2_000)) + " " * 2_000 + "x: 1\n"),
])
def test_nesting_ten_thousand_deep_is_refused_naming_the_file(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_script(path)
    assert str(path) in str(err.value) and "nested" in str(err.value)


def _anchor_bomb(levels: int) -> str:
    """A YAML of a few hundred bytes whose aliases expand to 10**levels values."""
    lines = ["l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]")
    lines.append(f"model: {{descriptor: {{rcut: *l{levels - 1}}}}}")
    return "\n".join(lines) + "\n"


def test_a_yaml_anchor_bomb_is_refused_within_100_mb(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_anchor_bomb(9))  # 10^9 values
    assert path.stat().st_size < 2048
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="YAML aliases expanded"):
            load_config(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MB"


def test_a_yaml_value_that_contains_itself_is_refused(tmp_path):
    path = tmp_path / "self.yaml"
    path.write_text("model: &m {descriptor: *m}\n")
    with pytest.raises(ConfigError, match="contains it"):
        load_config(path)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_rcut_not_finite_is_refused_at_its_key_path(tmp_path, tebd, text):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(tebd).replace('"rcut": 6.0', f'"rcut": {text}'))
    assert text in path.read_text()
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "model/descriptor/rcut" in str(err.value) and "finite" in str(err.value)


def test_yaml_nan_and_inf_are_refused_at_their_key_path(tmp_path):
    path = tmp_path / "input.yaml"
    path.write_text("model: {descriptor: {type: se_e2_a, rcut: .inf, rcut_smth: .nan}}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    for key in ("model/descriptor/rcut", "model/descriptor/rcut_smth"):
        assert key in str(err.value)


def test_a_message_never_expands_a_whole_value(tebd):
    script = copy.deepcopy(tebd)
    script["model"]["descriptor"]["sel"] = [[i] * 300 for i in range(300)]
    with pytest.raises(ConfigError) as err:
        normalize(script, "input.json")
    assert "model/descriptor/sel" in str(err.value)
    assert len(str(err.value)) < 2000


def test_negative_loss_prefactors_are_refused(tebd):
    script = copy.deepcopy(tebd)
    script["loss"]["start_pref_e"] = -1
    with pytest.raises(ConfigError, match="loss/start_pref_e"):
        normalize(script, "input.json")
