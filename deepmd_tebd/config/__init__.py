"""Reading DeePMD-kit input scripts: JSON or YAML, v0/v1/v2 layouts, normalised and validated
against the one schema in `schema.py`; every problem is a ConfigError naming file and key path."""
from __future__ import annotations

import json
from pathlib import Path

from .bounds import MAX_DEPTH, too_deep
from .errors import ConfigError, Problem
from .normalize import normalize
from .objects import Config, build_config

__all__ = ["Config", "ConfigError", "Problem", "build_config", "load_config", "load_settings",
           "normalize", "read_script"]


def read_script(path) -> dict:
    """The raw content of a JSON (*.json) or YAML (*.yaml, *.yml) input script; one nested too
    deep to be read is refused (normalize bounds the rest: config/bounds.py)."""
    path = Path(path)
    source = str(path)
    name = path.name.lower()
    if not (name.endswith("json") or name.endswith("yaml") or name.endswith("yml")):
        raise ConfigError(source, [Problem("", "the input script must be JSON (*.json) or YAML "
                                           "(*.yaml, *.yml)")])
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(source, [Problem("", f"cannot be read: {err.strerror}")]) from None
    if name.endswith("json"):
        try:
            return json.loads(text)
        except RecursionError:
            raise too_deep(source) from None
        except json.JSONDecodeError as err:
            raise ConfigError(source, [Problem("", f"invalid JSON at line {err.lineno}, column "
                                               f"{err.colno}: {err.msg}")]) from None
    import yaml

    try:
        _check_yaml_depth(yaml, text, source)
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, [Problem("", f"invalid YAML{where}: "
                                           f"{getattr(err, 'problem', err)}")]) from None


def _check_yaml_depth(yaml, text: str, source: str) -> None:
    """ConfigError once the YAML's collections nest deeper than MAX_DEPTH, read from its event
    stream (iterative) before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep(source)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_config(path) -> dict:
    """The normalised script read from `path` (validation only; data checks come separately)."""
    return normalize(read_script(path), source=str(path))


def load_settings(path) -> Config:
    """The typed settings of the script at `path` (normalised and validated)."""
    return build_config(load_config(path))
