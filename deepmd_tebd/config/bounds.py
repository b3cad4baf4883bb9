"""Bounds on what an input script may be before anything walks it recursively: nesting depth,
the number of values YAML aliases expand to (an alias is a reference, so a few lines of anchors
can stand for 10^8 values), references to itself, and numbers that are not finite (JSON's NaN and
Infinity, YAML's .nan and .inf). Every walk here is iterative, so no script can exhaust the
interpreter's recursion limit."""
from __future__ import annotations

import json
import math

from .errors import ConfigError, Problem

MAX_DEPTH = 32  # DeePMD-kit's deepest keys (model/descriptor/neuron/0) are 4 levels down
MAX_VALUES = 100_000  # values of the script with every alias expanded (a long list of systems
# holds thousands)

__all__ = ["MAX_DEPTH", "MAX_VALUES", "check_bounds", "non_finite_numbers", "too_deep"]


def too_deep(source: str) -> ConfigError:
    """The error of a script nested deeper than MAX_DEPTH (found by any of the readers)."""
    return ConfigError(source, [Problem("", f"nested deeper than {MAX_DEPTH} levels; an input "
                                        "script is a few levels deep")])


def _children(node) -> list:
    return list(node.values()) if isinstance(node, dict) else list(node)


def check_bounds(data, source: str) -> None:
    """ConfigError when `data` nests deeper than MAX_DEPTH, expands to more than MAX_VALUES
    values, or contains itself (a recursive YAML alias). Shared containers (aliases) are
    measured once, so the check costs the size of the parsed document, not of its expansion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(data, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        if finished:
            children = [c for c in _children(node) if isinstance(c, (dict, list))]
            size[key] = 1 + len(_children(node)) - len(children) + sum(size[id(c)]
                                                                       for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            on_path.discard(key)
            if depth[key] > MAX_DEPTH:
                raise too_deep(source)
            if size[key] > MAX_VALUES:
                raise ConfigError(source, [Problem("", f"it holds more than {MAX_VALUES:,} "
                                                   "values, YAML aliases expanded; an input "
                                                   "script holds a few hundred")])
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(source, [Problem("", "a YAML alias refers to a value that "
                                               "contains it (a script that contains itself)")])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if isinstance(c, (dict, list)))


def non_finite_numbers(data, root: str = "") -> list[Problem]:
    """A problem at the key path of every NaN or infinite number in `data` (bounded first)."""
    problems = []
    stack = [(data, root)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(Problem(path, "expected a finite number, got "
                                    f"{json.dumps(node)}"))
        elif isinstance(node, dict):
            stack.extend((v, f"{path}/{k}" if path else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}/{k}" if path else str(k)) for k, v in enumerate(node))
    return sorted(problems, key=lambda p: p.path)
