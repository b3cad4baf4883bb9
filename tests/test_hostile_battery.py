"""A property battery of hostile input: random single mutations of a valid input script, of its
data arrays and of the other commands' options, each run through `dp` as a user would. For every
mutation that makes the input invalid, the command exits 1 (or argparse's 2) with a message
naming the file and the key path, array or option, prints no traceback, and leaves every file
as it was (a failed `dp train` writes nothing at all). A mutation that may be valid (a deleted
key, a number out of the usual range) must either succeed or be refused that way.

The examples are drawn deterministically (derandomized); DEEPMD_TEBD_BATTERY=K multiplies their
number by K for the long form by hand, e.g.
    DEEPMD_TEBD_BATTERY=20 pytest tests/test_hostile_battery.py --hypothesis-show-statistics
The single defects it generalises have their own tests (tests/infer/test_hostile_commands.py,
tests/config/test_hostile_reader.py)."""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from dp_command import run_dp
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from shared_paths import INPUTS, WATER, needs_water

pytestmark = needs_water
SCALE = int(os.environ.get("DEEPMD_TEBD_BATTERY") or 1)


def _settings(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


# -- the workspace: a small valid run of two short water systems -----------------------------

def _short_system(source: Path, target: Path, nframes: int) -> None:
    """`source` with its first set cut to `nframes` frames."""
    target.mkdir(parents=True)
    for name in ("type.raw", "type_map.raw"):
        shutil.copy(source / name, target / name)
    (target / "set.000").mkdir()
    for array in sorted((source / "set.000").glob("*.npy")):
        np.save(target / "set.000" / array.name, np.load(array)[:nframes])


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        _short_system(WATER / "data_0", root / "train_system", 4)
        _short_system(WATER / "data_3", root / "valid_system", 2)
        script = json.loads((INPUTS / "water_se_e2_a_tebd.json").read_text())
        script["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2)
        script["model"]["fitting_net"]["neuron"] = [8]
        training = script["training"]
        training.update(numb_steps=1, disp_freq=1, save_freq=1)
        training["training_data"].update(systems=["train_system"], batch_size=1)
        training["validation_data"].update(systems=["valid_system"], batch_size=1, numb_btch=1)
        self.script = script
        run = self.example()
        for args in (("train", "input.json"), ("freeze", "-o", "graph.pb")):
            result = run_dp(run, *args)
            assert result.returncode == 0, result.stderr[-3000:]
        self.graph = (run / "graph.pb").read_bytes()
        self.lcurve = (run / "lcurve.out").read_text()

    def example(self, script: dict | None = None) -> Path:
        """A fresh run folder: the valid script (or `script`) and copies of both systems."""
        run = Path(tempfile.mkdtemp(dir=self.root, prefix="example-"))
        for name in ("train_system", "valid_system"):
            shutil.copytree(self.root / name, run / name)
        (run / "input.json").write_text(json.dumps(script or self.script, indent=1))
        return run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("battery"))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_refused(result, names: list[str], status=(1,)):
    """Exit status in `status`, no traceback, and one of `names` (file, key path, array or
    option) in the message."""
    note(result.stderr[-2000:])
    assert result.returncode in status, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert any(name in result.stderr for name in names), (names, result.stderr[-3000:])


# -- input scripts ---------------------------------------------------------------------------

def _nodes(node, path=()):
    """(path, value) of every key and list item under `node`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and key.startswith("_"):
            continue  # a comment: any value goes
        yield path + (key,), value
        yield from _nodes(value, path + (key,))


def _deep(levels: int):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


INVALID = ["non-finite", "object for a scalar", "scalar for a section", "unknown key",
           "nested 40 deep"]
MAYBE = ["deleted", "negative", "zero", "huge", "string"]


@st.composite
def script_mutations(draw, script: dict, kinds: list[str]):
    """(kind, key path, mutated script): one mutation of `script` of a kind among `kinds`."""
    nodes = list(_nodes(script))
    numbers = [(p, v) for p, v in nodes if isinstance(v, (int, float))
               and not isinstance(v, bool)]
    scalars = [(p, v) for p, v in nodes if not isinstance(v, (dict, list))]
    sections = [(p, v) for p, v in nodes if isinstance(v, (dict, list))]
    keys = [(p, v) for p, v in nodes if isinstance(p[-1], str)]
    kind = draw(st.sampled_from(kinds))
    pool = {"non-finite": numbers, "negative": numbers, "zero": numbers, "huge": numbers,
            "object for a scalar": scalars, "string": numbers, "nested 40 deep": scalars,
            "scalar for a section": sections, "deleted": keys,
            "unknown key": [(p, v) for p, v in sections if isinstance(v, dict)]}[kind]
    path, value = draw(st.sampled_from(pool))
    mutated = copy.deepcopy(script)
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    if kind == "non-finite":
        new = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    elif kind == "negative":
        new = -abs(value) - 1
    else:
        new = {"zero": 0, "huge": 1e12, "string": "text", "object for a scalar": {"a": 1},
               "scalar for a section": 7, "nested 40 deep": _deep(40)}.get(kind)
    if kind == "deleted":
        del parent[path[-1]]
    elif kind == "unknown key":
        parent[path[-1]]["zz_unknown"] = 1
        path = path + ("zz_unknown",)
    else:
        parent[path[-1]] = new
    return kind, "/".join(str(k) for k in path), mutated


def _key_names(path: str) -> list[str]:
    """The key path or one of its ancestors (a message may name the list or the section)."""
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 1, -1)] or [path]


def _run_script_mutation(workspace, kind, path, mutated, command):
    run = workspace.example(mutated)
    note(f"{kind} at {path}")
    before = _snapshot(run)
    result = run_dp(run, *command)
    if kind in INVALID:
        names = ["input.json"] if kind == "nested 40 deep" else _key_names(path)
        _assert_refused(result, names)
        assert "input.json" in result.stderr
    elif result.returncode != 0:
        _assert_refused(result, _key_names(path) + ["input.json"])
    if result.returncode != 0:
        assert _snapshot(run) == before
    shutil.rmtree(run)
    return result


@_settings(60)
@given(data=st.data())
def test_script_mutations_are_refused_by_dp_check_naming_the_key_path(workspace, data):
    kind, path, mutated = data.draw(script_mutations(workspace.script, INVALID + MAYBE))
    _run_script_mutation(workspace, kind, path, mutated, ("check", "input.json"))


@_settings(6)
@given(data=st.data())
def test_invalid_script_mutations_make_dp_train_write_nothing(workspace, data):
    kind, path, mutated = data.draw(script_mutations(workspace.script, INVALID))
    _run_script_mutation(workspace, kind, path, mutated, ("train", "input.json"))


# -- data arrays -----------------------------------------------------------------------------

ARRAYS = ["coord.npy", "box.npy", "energy.npy", "force.npy"]


def _mutate_array(draw, path: Path) -> str:
    data = np.load(path)
    flat = data.reshape(data.shape[0], -1)
    kind = draw(st.sampled_from(["nan", "inf", "frames", "width", "3-D", "strings", "garbage",
                                 "deleted", "empty"]))
    if kind in ("nan", "inf"):
        index = draw(st.integers(0, flat.size - 1))
        flat = flat.astype(np.float64).copy()
        flat.flat[index] = np.nan if kind == "nan" else -np.inf
        np.save(path, flat)
    elif kind == "frames":
        np.save(path, flat[:draw(st.integers(1, flat.shape[0] - 1))])
    elif kind == "width":
        np.save(path, flat[:, :-1])
    elif kind == "3-D":
        np.save(path, flat[..., None, None])
    elif kind == "strings":
        np.save(path, flat.astype(str))
    elif kind == "garbage":
        path.write_bytes(b"not an array\n" * 3)
    elif kind == "deleted":
        path.unlink()
    else:
        np.save(path, flat[:0])
    return kind


def _mutate_types(draw, path: Path) -> str:
    types = path.read_text().split()
    kind = draw(st.sampled_from(["type out of the map", "negative type", "text", "one atom "
                                 "fewer", "deleted"]))
    index = draw(st.integers(0, len(types) - 1))
    if kind == "one atom fewer":
        del types[index]
    elif kind == "deleted":
        path.unlink()
        return kind
    else:
        types[index] = {"type out of the map": "7", "negative type": "-1", "text": "O"}[kind]
    path.write_text(" ".join(types) + "\n")
    return kind


@_settings(12)
@given(data=st.data())
def test_data_array_mutations_make_dp_train_name_the_array_and_write_nothing(workspace, data):
    run = workspace.example()
    name = data.draw(st.sampled_from(ARRAYS + ["type.raw"]))
    target = run / "train_system" / ("type.raw" if name == "type.raw" else f"set.000/{name}")
    kind = (_mutate_types(data.draw, target) if name == "type.raw"
            else _mutate_array(data.draw, target))
    note(f"{kind} of {name}")
    before = _snapshot(run)
    _assert_refused(run_dp(run, "train", "input.json"), [name])
    assert _snapshot(run) == before
    shutil.rmtree(run)


# -- the other commands' options -------------------------------------------------------------

NUMBERS = ["nan", "inf", "-inf", "x", "1e400", ""]
OPTIONS = {  # command, option, its invalid values beyond NUMBERS, the rest of the command
    ("compress", "-s"): (["0", "-0.01", "-1"], ["-i", "graph.pb", "-o", "c.pb"]),
    ("compress", "-e"): (["0", "-5", "-1", "2.5"], ["-i", "graph.pb", "-o", "c.pb"]),
    ("compress", "-f"): (["0", "-2"], ["-i", "graph.pb", "-o", "c.pb"]),
    ("test", "-n"): (["-3", "-1", "1.5"], ["-m", "graph.pb", "-s", "valid_system"]),
    ("model-devi", "-f"): (["0", "-2", "-1"], ["-m", "graph.pb", "graph.pb", "-s", "valid_system"]),
    ("model-devi", "--relative"): (["-0.5", "-1"], ["-m", "graph.pb", "graph.pb", "-s",
                                               "valid_system"]),
    ("model-devi", "--relative_v"): (["-0.5", "-1"], ["-m", "graph.pb", "graph.pb", "-s",
                                                 "valid_system"]),
    ("neighbor-stat", "-r"): (["0", "-6", "-1"], ["-s", "valid_system", "-t", "O", "H"]),
    ("train", "--workers"): (["0", "-1", "1.5"], ["input.json"]),
}
PATHS = {  # command and its arguments with PATH standing for the hostile path
    "freeze -o": ["freeze", "-o", "PATH"], "freeze -c": ["freeze", "-c", "PATH"],
    "test -m": ["test", "-m", "PATH", "-s", "valid_system"],
    "test -s": ["test", "-m", "graph.pb", "-s", "PATH"],
    "test -d": ["test", "-m", "graph.pb", "-s", "valid_system", "-d", "PATH"],
    "model-devi -m": ["model-devi", "-m", "graph.pb", "PATH", "-s", "valid_system"],
    "model-devi -o": ["model-devi", "-m", "graph.pb", "graph.pb", "-s", "valid_system", "-o",
                      "PATH"],
    "compress -i": ["compress", "-i", "PATH", "-o", "c.pb"],
    "compress -o": ["compress", "-i", "graph.pb", "-o", "PATH"],
    "plot": ["plot", "PATH", "-o", "l.png"], "plot -o": ["plot", "lcurve.out", "-o", "PATH"],
    "check": ["check", "PATH"], "train": ["train", "PATH"],
    "train -o": ["train", "input.json", "-o", "PATH"],
    "train --restart": ["train", "input.json", "--restart", "PATH"],
    "train --init-frz-model": ["train", "input.json", "--init-frz-model", "PATH"],
}
OUTPUTS = {  # the output options, and the input each would destroy if written over it
    "freeze -o": None, "test -d": None, "model-devi -o": "graph.pb", "compress -o": "graph.pb",
    "plot -o": "lcurve.out", "train -o": "input.json"}


def _hostile_path(draw, run: Path, which: str) -> str:
    if which not in OUTPUTS:
        kind = draw(st.sampled_from(["missing", "a folder", "garbage"]))
    else:
        kind = draw(st.sampled_from(["missing folder", "a folder", "read-only file"]
                                    + (["the input"] if OUTPUTS[which] else [])))
    (run / "sub").mkdir()
    if kind == "missing":
        return "no_such_file.pb"
    if kind == "missing folder":
        return "no_such_folder/x"
    if kind == "a folder":
        return "sub"
    if kind == "the input":
        return OUTPUTS[which]
    if kind == "read-only file":  # for -d, the first detail file of the prefix
        kept = run / ("kept.e.out" if which == "test -d" else "kept.pb")
        kept.write_bytes(b"kept")
        kept.chmod(0o444)
        return "kept" if which == "test -d" else "kept.pb"
    (run / "garbage.pb").write_bytes(b"\x00garbage" * 10)
    return "garbage.pb"


@_settings(40)
@given(data=st.data())
def test_hostile_options_and_paths_of_every_command_are_refused_writing_nothing(workspace,
                                                                                data):
    run = workspace.example()
    (run / "graph.pb").write_bytes(workspace.graph)
    (run / "lcurve.out").write_text(workspace.lcurve)
    if data.draw(st.booleans()):
        (command, option), (bad, rest) = data.draw(st.sampled_from(sorted(OPTIONS.items())))
        value = data.draw(st.sampled_from(NUMBERS + bad))
        args, names, status = [command, *rest, f"{option}={value}"], [option], (2,)
    else:
        which = data.draw(st.sampled_from(sorted(PATHS)))
        path = _hostile_path(data.draw, run, which)
        args = [a.replace("PATH", path) for a in PATHS[which]]
        names, status = [path], (1,)
    note(" ".join(args))
    before = _snapshot(run)
    _assert_refused(run_dp(run, *args), names, status)
    assert _snapshot(run) == before
    shutil.rmtree(run)
