"""Properties of `normalize` over mutated versions of DeePMD-kit's example inputs.

Whatever a script contains, normalize returns a dict or raises ConfigError listing at least one
problem with a message: never another exception. A normalised script normalises to itself.
"""
from __future__ import annotations

import copy
import functools
import json

import pytest
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st

from deepmd_tebd.config import ConfigError, normalize
from shared_paths import INPUTS

# DeePMD-kit's example inputs, in ../shared beside the checkout
NAMES = ["water_se_e2_a_tebd.json", "water_se_e2_a.json"]
if not all((INPUTS / name).is_file() for name in NAMES):
    pytest.skip(f"DeePMD-kit's example inputs are not in {INPUTS}", allow_module_level=True)
EXAMPLES = {name: json.loads((INPUTS / name).read_text()) for name in NAMES}


def _v1_layout(script: dict) -> dict:
    """The script in the v1 layout: data keys in `training`, stop_batch, decay_rate."""
    script = copy.deepcopy(script)
    training = script["training"]
    training.update(training.pop("training_data"))
    training.pop("validation_data")
    training["stop_batch"] = training.pop("numb_steps")
    training["numb_test"] = 10
    script["learning_rate"].pop("stop_lr")
    script["learning_rate"]["decay_rate"] = 0.95
    return script


V1_NAME = "v1 layout of water_se_e2_a_tebd.json"
EXAMPLES[V1_NAME] = _v1_layout(EXAMPLES["water_se_e2_a_tebd.json"])

SETTINGS = settings(derandomize=True, max_examples=300, deadline=None)
# mutations of the v1 layout may leave a v2 script with the deprecated training/numb_test
pytestmark = pytest.mark.filterwarnings("ignore:training/numb_test:DeprecationWarning")

# Names a rename may pick besides random text: keys that change how the script is read (aliases,
# the v1 layout, private keys, keys of other sections).
KNOWN_NAMES = ["model", "training", "training_data", "systems", "stop_batch", "numb_steps",
               "n_neuron", "neuron", "type", "sel", "type_map", "decay_rate", "numb_test",
               "loss", "learning_rate", "type_embedding", "compress", "_comment", "enable_ema",
               "validation_data", "numb_batch", "set_prefix", "use_srtab", ""]
# Strings a replacement may pick besides random text: values with a meaning somewhere.
KNOWN_STRINGS = ["auto", "auto:1.5", "se_a", "se_e2_a", "se_atten", "exp", "ener", "systems",
                 "tanh", "float64", "prob_uniform", "1.0", ""]


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


_scalars = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.one_of(st.integers(-5, 300), st.integers(-10**12, 10**12)),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.one_of(st.sampled_from(KNOWN_STRINGS), st.text(max_size=12)),
}
_any_json = st.recursive(st.one_of(*_scalars.values()),
                         lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                 st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4)),
                         max_leaves=8)
JSON_OF_TYPE = {**_scalars,
                "list": st.lists(_any_json, max_size=4),
                "dict": st.dictionaries(st.one_of(st.sampled_from(KNOWN_NAMES),
                                                  st.text(max_size=8)), _any_json, max_size=4)}


def value_paths(node, prefix=()) -> list[tuple]:
    """Paths of every value: dict keys and list indices, at every depth."""
    paths = []
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        paths.append(prefix + (key,))
        paths += value_paths(value, prefix + (key,))
    return paths


def key_paths(node) -> list[tuple]:
    """Paths of the values held by a dict key (not by a list index)."""
    paths = []
    for path in value_paths(node):
        parent = node
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            paths.append(path)
    return paths


def parent_of(script, path):
    node = script
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated_scripts(draw, names=tuple(NAMES)):
    """An example input with one to three mutations: a key dropped, a key renamed, or a value
    replaced by a JSON value of another type; at any depth."""
    name = draw(st.sampled_from(names))
    script = copy.deepcopy(EXAMPLES[name])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "rename", "replace"]))
        paths = value_paths(script) if kind == "replace" else key_paths(script)
        if not paths:
            break
        # a random depth first, then a path at that depth: top-level sections are hit as often
        # as deeply nested keys
        depth = draw(st.sampled_from(sorted({len(p) for p in paths})))
        path = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        parent = parent_of(script, path)
        if kind == "drop":
            del parent[path[-1]]
        elif kind == "rename":
            new = draw(st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=15)))
            parent[new] = parent.pop(path[-1])
        else:
            other = draw(st.sampled_from([t for t in JSON_OF_TYPE
                                          if t != json_type(parent[path[-1]])]))
            parent[path[-1]] = draw(JSON_OF_TYPE[other])
        note(f"{kind} {'/'.join(map(str, path))}")
    return script


def check_normalised_or_refused(script):
    before = copy.deepcopy(script)
    try:
        result = normalize(script, "mutated.json")
    except ConfigError as err:
        assert err.problems, "a ConfigError without problems"
        for problem in err.problems:
            assert isinstance(problem.path, str)
            assert isinstance(problem.message, str) and problem.message.strip()
        assert len(str(err).splitlines()) >= len(err.problems)
    else:
        assert isinstance(result, dict)
        json.dumps(result, allow_nan=False)  # out.json can be written
        assert normalize(copy.deepcopy(result), "again.json") == result
    assert script == before, "normalize modified its input"


@SETTINGS
@given(script=mutated_scripts())
def test_mutated_script_is_normalised_or_refused_with_problems(script):
    check_normalised_or_refused(script)


@SETTINGS
@given(script=mutated_scripts(names=(V1_NAME,)))
def test_mutated_v1_script_is_converted_or_refused_with_problems(script):
    check_normalised_or_refused(script)


# ---------------------------------------------------------------------------------------------
# Idempotence


@pytest.mark.parametrize("name", [*NAMES, V1_NAME])
def test_normalize_is_idempotent_on_examples(name):
    once = normalize(copy.deepcopy(EXAMPLES[name]), name)
    twice = normalize(copy.deepcopy(once), name)
    assert twice == once
    assert json.dumps(twice) == json.dumps(once)  # key order too


@functools.lru_cache(maxsize=None)
def optional_key_paths(name: str) -> tuple[tuple, ...]:
    """The keys of an example whose removal alone leaves a valid script."""
    script = EXAMPLES[name]
    optional = []
    for path in key_paths(script):
        trial = copy.deepcopy(script)
        del parent_of(trial, path)[path[-1]]
        try:
            normalize(trial)
        except ConfigError:
            continue
        optional.append(path)
    return tuple(optional)


@pytest.mark.parametrize("name", [*NAMES, V1_NAME])
def test_examples_have_many_optional_keys(name):
    assert len(optional_key_paths(name)) > 30


@pytest.mark.parametrize("name", [*NAMES, V1_NAME])
@SETTINGS
@given(data=st.data())
def test_normalize_is_idempotent_after_removing_optional_keys(name, data):
    removed = data.draw(st.sets(st.sampled_from(optional_key_paths(name)), min_size=1,
                                max_size=12))
    script = copy.deepcopy(EXAMPLES[name])
    for path in sorted(removed, key=len, reverse=True):  # inner keys before their sections
        del parent_of(script, path)[path[-1]]
    try:
        once = normalize(script, name)
    except ConfigError:
        reject()  # two removals that are fine alone may conflict together
    twice = normalize(copy.deepcopy(once), name)
    assert twice == once
    assert json.dumps(twice) == json.dumps(once)
