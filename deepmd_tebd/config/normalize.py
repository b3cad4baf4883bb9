"""Normalisation of an input script: v0/v1 conversion, `_` keys dropped, variant tags and aliases
resolved, strict validation against the schema, defaults filled, cross-key checks. Every problem
found is reported at once, each with its key path."""
from __future__ import annotations

import copy
import difflib
import json

from jsonschema import Draft202012Validator, validators

from . import schema as S
from .bounds import check_bounds, non_finite_numbers
from .compat import convert_to_v2
from .data_checks import data_section_problems
from .descriptors import one_sel_block
from .errors import ConfigError, Problem
from .v3_keys import NO_DEFAULT, econf_problems, schedule_problems

# JSON Schema counts 50.0 as an integer; an input script's integers must be written as integers
_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)),
)

_TYPE_WORDS = {"integer": "an integer", "number": "a number", "boolean": "true or false",
               "string": "a string", "array": "a list", "object": "a mapping of keys",
               "null": "null"}


def normalize(data, source: str = "<input>") -> dict:
    """The normalised v2 script (a new dict), or ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", "the input script must be a mapping of sections "
                                           f"(model, training, ...), got {_show(data)}")])
    check_bounds(data, source)
    _raise_if(non_finite_numbers(data), source)
    data = _drop_private(convert_to_v2(copy.deepcopy(data), source))
    problems: list[Problem] = []
    schema = _document_schema(data, problems)
    _rename_aliases(data, schema, "", problems)
    _flag_unsupported(data, schema, "", problems)
    errors = _Validator(schema).iter_errors(data)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_describe(error))
    _raise_if(problems, source)
    given_lr = set(data["learning_rate"]) if isinstance(data.get("learning_rate"), dict) else set()
    _fill_defaults(data, schema)
    problems += schedule_problems(data, given_lr)
    _cross_check(data, problems)
    _raise_if(problems, source)
    return data


def _raise_if(problems, source):
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ConfigError(source, unique)


def _join(path: str, key) -> str:
    return f"{path}/{key}" if path else str(key)


def _drop_private(value):
    if isinstance(value, dict):
        return {k: _drop_private(v) for k, v in value.items()
                if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(value, list):
        return [_drop_private(v) for v in value]
    return value


def _suggest(word, candidates) -> str:
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# how a value's JSON type is named in messages (bool before int: True is an int in Python)
_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
          (list, "a list"), (dict, "a mapping"))


def _show(value) -> str:
    if value is None:
        return "null"
    kind = next((word for t, word in _KINDS if isinstance(value, t)), type(value).__name__)
    text = _brief(value, 60)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def _brief(value, limit: int) -> str:
    """`value` as JSON, rendered only up to a little over `limit` characters (a value is never
    expanded whole: it may be a list of a million systems)."""
    if isinstance(value, dict):
        items, opener, closer = value.items(), "{", "}"
    elif isinstance(value, list):
        items, opener, closer = enumerate(value), "[", "]"
    else:
        text = json.dumps(value, default=str)
        return text if len(text) <= limit + 3 else text[:limit] + "..."
    parts, used = [], 1
    for key, item in items:
        if used > limit:
            parts.append("...")
            break
        part = _brief(item, limit - used)
        if opener == "{":
            part = f"{json.dumps(str(key))}: {part}"
        parts.append(part)
        used += len(part) + 2
    return opener + ", ".join(parts) + closer


# ---------------------------------------------------------------------------------------------
# The schema of this document: variant sections replaced by the schema of their type


def _get(data, path):
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _schema_at(schema, path):
    node = schema
    for key in path:
        node = node["properties"][key]
    return node


def _document_schema(data: dict, problems: list[Problem]) -> dict:
    schema = copy.deepcopy(S.ROOT)
    for path, implemented in S.VARIANTS.items():
        parent = _schema_at(schema, path[:-1])
        key = path[-1]
        section = _get(data, path)
        if not isinstance(section, dict):
            continue  # absent (loss is optional) or not a mapping: the validation reports it
        tag = section.get("type", S.VARIANT_DEFAULT_TYPE.get(path))
        where = _join("/".join(path), "type")
        names = list(dict.fromkeys(S.VARIANT_ALIASES.get(t, t) for t in implemented))
        aliases = {}
        for alias, name in S.VARIANT_ALIASES.items():
            if alias in implemented:
                aliases.setdefault(name, []).append(alias)
        listing = ", ".join(n + (f" (alias {', '.join(aliases[n])})" if n in aliases else "")
                            for n in names)
        if tag is None:
            problems.append(Problem(where, f"required key is missing; implemented: {listing}"))
            parent["properties"][key] = {"type": "object"}
        elif not isinstance(tag, str) or tag not in implemented:
            known = tag in S.UNSUPPORTED_VARIANTS.get(path, [])
            hint = "" if known else _suggest(tag, list(implemented) +
                                             S.UNSUPPORTED_VARIANTS.get(path, []))
            problems.append(Problem(where, f"{_show(tag)} is not implemented by deepmd_tebd"
                                    f"{hint}; implemented: {listing}"))
            parent["properties"][key] = {"type": "object"}
        else:
            if tag in S.VARIANT_ALIASES:
                section["type"] = S.VARIANT_ALIASES[tag]
            parent["properties"][key] = implemented[tag]
    return schema


# ---------------------------------------------------------------------------------------------
# Aliases, refused keys, defaults


def _children(schema: dict):
    return schema.get("properties", {}) if isinstance(schema, dict) else {}


def _rename_aliases(data, schema, path, problems):
    if not isinstance(data, dict):
        return
    for key, sub in _children(schema).items():
        for alias in sub.get("x-alias", []):
            if alias in data:
                if key in data:
                    problems.append(Problem(_join(path, alias), f"both {key!r} and its alias "
                                            f"{alias!r} are given"))
                    del data[alias]
                else:
                    data[key] = data.pop(alias)  # the canonical key moves to the end
    for key, sub in _children(schema).items():
        _rename_aliases(data.get(key), sub, _join(path, key), problems)


def _flag_unsupported(data, schema, path, problems, ignored=None):
    """Problems for keys this package refuses, and for DeePMD-kit 3.x keys given another value
    than their default where that is refused (x-v3); the 3.x keys whose other value is ignored
    go to `ignored` (their paths)."""
    if not isinstance(data, dict):
        return
    for key, sub in _children(schema).items():
        if key not in data:
            continue
        here = _join(path, key)
        if "x-unsupported" in sub:
            problems.append(Problem(here, sub["x-unsupported"]))
        elif "x-v3" in sub:
            rule = sub["x-v3"]
            if rule["default"] != NO_DEFAULT and _same(data[key], rule["default"]):
                continue
            if rule["when_other"] == "ignore":
                if ignored is not None:
                    ignored.append(here)
            else:
                shown = "" if rule["default"] == NO_DEFAULT else \
                    f" (accepted at its default {json.dumps(rule['default'])})"
                problems.append(Problem(here, f"{_show(data[key])}: {rule['reason']}{shown}"))
        else:
            _flag_unsupported(data[key], sub, here, problems, ignored)


def _same(value, default) -> bool:
    """JSON equality: numbers by value, but a boolean is no number."""
    if isinstance(value, bool) or isinstance(default, bool):
        return type(value) is type(default) and value == default
    return value == default


def ignored_keys(data: dict) -> list[str]:
    """The key paths of a normalised script that DeePMD-kit 3.x added and whose value both
    DeePMD-kit's TensorFlow backend and this package ignore (other than their default)."""
    problems: list[Problem] = []
    ignored: list[str] = []
    _flag_unsupported(data, _document_schema(data, problems), "", problems, ignored)
    return ignored


def default_section(path: tuple, tag: str) -> dict:
    """A variant section that the script leaves out (the loss), with its schema's defaults."""
    section = {"type": tag}
    _fill_defaults(section, S.VARIANTS[path][tag])
    return section


def _fill_defaults(data, schema):
    if not isinstance(data, dict):
        return
    for key, sub in _children(schema).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            _fill_defaults(data[key], sub)


# ---------------------------------------------------------------------------------------------
# Validation errors as problems


def _expectation(schema: dict) -> str:
    if "x-expect" in schema:
        return schema["x-expect"]
    types = schema.get("type")
    if isinstance(types, list):
        return " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    return _TYPE_WORDS.get(types, "a valid value")


def _describe(error) -> list[Problem]:
    path = "/".join(str(p) for p in error.absolute_path)
    kind, value, sch = error.validator, error.instance, error.schema
    if kind == "additionalProperties":
        known = list(sch.get("properties", {}))
        known += [a for sub in sch.get("properties", {}).values() for a in sub.get("x-alias", [])]
        return [Problem(_join(path, k), f"unknown key {k!r}{_suggest(k, known)}")
                for k in value if k not in sch.get("properties", {})]
    if kind == "required":
        return [Problem(_join(path, k), "required key is missing")
                for k in error.validator_value if k not in value]
    if kind == "enum":
        options = ", ".join(repr(o) for o in error.validator_value)
        why = f" ({sch['x-why']})" if "x-why" in sch else ""
        return [Problem(path, f"expected one of {options}, got {_show(value)}{why}"
                        f"{_suggest(value, [str(o) for o in error.validator_value])}")]
    if kind == "minimum":
        return [Problem(path, f"expected a value >= {error.validator_value}, got {_show(value)}")]
    if kind == "exclusiveMinimum":
        return [Problem(path, f"expected a value > {error.validator_value}, got {_show(value)}")]
    if kind == "minItems" and error.validator_value == 1:
        return [Problem(path, f"expected a non-empty list, got {_show(value)}")]
    if kind == "minItems":
        return [Problem(path, f"expected at least {error.validator_value} entries, got "
                              f"{_show(value)}")]
    if kind == "maxItems":
        return [Problem(path, f"expected at most {error.validator_value} entries, got "
                              f"{_show(value)}")]
    if kind in ("type", "anyOf", "pattern"):
        return [Problem(path, f"expected {_expectation(sch)}, got {_show(value)}")]
    return [Problem(path, error.message)]


# ---------------------------------------------------------------------------------------------
# Checks across keys


def _ntypes(model: dict) -> tuple[int | None, str]:
    """(number of types, where it comes from): len(type_map), or without a type_map len(sel)
    (DeePMD-kit's deepmd/tf/descriptor/se_a.py: DescrptSeA.__init__ counts the types of sel);
    None while sel is "auto" and no type_map is given (the data decide, check_against_data)."""
    if model.get("type_map"):
        return len(model["type_map"]), "as in model/type_map"
    sel = model["descriptor"]["sel"]
    if isinstance(sel, list) and not one_sel_block(model["descriptor"]["type"]):
        return len(sel), "the length of model/descriptor/sel, as no model/type_map is given"
    return None, ""


def _cross_check(data: dict, problems: list[Problem]) -> None:
    model = data["model"]
    desc, fit = model["descriptor"], model["fitting_net"]
    ntypes, origin = _ntypes(model)
    type_map = model.get("type_map", [])
    if len(set(type_map)) != len(type_map):
        dup = sorted({t for t in type_map if type_map.count(t) > 1})
        problems.append(Problem("model/type_map", f"element names must be unique, {dup} repeat"))
    if model.get("type_embedding", {}).get("use_econf_tebd"):
        problems += econf_problems(type_map)
    if not type_map and one_sel_block(desc["type"]):
        problems.append(Problem("model/type_map", f"required by {desc['type']}"))
    if model["type"] not in S.MODEL_TYPES:
        problems.append(Problem("model/type", f"{_show(model['type'])} is not implemented by "
                                "deepmd_tebd; implemented: standard"))
    if desc["rcut_smth"] > desc["rcut"]:
        problems.append(Problem("model/descriptor/rcut_smth", f"must not exceed rcut "
                                f"({desc['rcut']}), got {_show(desc['rcut_smth'])}"))
    if "axis_neuron" in desc and desc["axis_neuron"] > desc["neuron"][-1]:
        problems.append(Problem("model/descriptor/axis_neuron", "must not exceed the last "
                                f"embedding width ({desc['neuron'][-1]}), got "
                                f"{_show(desc['axis_neuron'])}"))
    if isinstance(desc["sel"], list) and len(desc["sel"]) != ntypes:
        problems.append(Problem("model/descriptor/sel", f"expected one entry per type "
                                f"({ntypes}, as in model/type_map), got {_show(desc['sel'])}"))
    for k, pair in enumerate(desc["exclude_types"]):
        if ntypes is not None and any(t >= ntypes for t in pair):
            problems.append(Problem(f"model/descriptor/exclude_types/{k}", f"types must be below "
                                    f"{ntypes} ({origin}), got {_show(pair)}"))
    if isinstance(fit["trainable"], list) and len(fit["trainable"]) != len(fit["neuron"]) + 1:
        problems.append(Problem("model/fitting_net/trainable", f"expected "
                                f"{len(fit['neuron']) + 1} entries (one per hidden layer and the "
                                f"output layer), got {_show(fit['trainable'])}"))
    if ntypes is not None and len(fit["atom_ener"]) > ntypes:
        problems.append(Problem("model/fitting_net/atom_ener", f"expected at most {ntypes} "
                                f"entries (one per type, {origin}), got "
                                f"{_show(fit['atom_ener'])}"))
    if fit["use_aparam_as_mask"]:
        problems.append(Problem("model/fitting_net/use_aparam_as_mask", "aparam as a mask is not "
                                "supported: must be false"))
    if desc.get("smooth_type_embedding") and desc["rcut_smth"] == 0:
        problems.append(Problem("model/descriptor/smooth_type_embedding", "needs rcut_smth > 0: "
                                "the type net's weight clip(1 - (1 - rcut_smth s)^3, 0, 1) is "
                                "zero everywhere with rcut_smth 0"))
    if "compress" in model:
        if desc["type"] == "se_a_ebd_v2":
            problems.append(Problem("model/compress", "model compression is not supported for "
                                    "se_a_ebd_v2: deepmd_tebd compresses no model with type "
                                    "embedding (DeePMD-kit >= 2.2.6 tabulates this one; "
                                    "deepmd_tebd does not)"))
        elif "type_embedding" in model:
            problems.append(Problem("model/compress", "model compression is not supported for "
                                    "se_e2_a with type_embedding: the type embedding cannot be "
                                    "tabulated (DeePMD-kit 2.2.5 cannot compress it either)"))
        elif desc["resnet_dt"]:
            problems.append(Problem("model/compress", "model compression needs "
                                    "model/descriptor/resnet_dt false (DeePMD-kit's "
                                    "DescrptSeA.enable_compression)"))
    loss = data.get("loss")
    if loss and (loss["start_pref_gf"] or loss["limit_pref_gf"]):
        if loss["numb_generalized_coord"] < 1:
            problems.append(Problem("loss/numb_generalized_coord", "must be >= 1 when a "
                                    "generalised-force prefactor is not zero"))
        key = "start_pref_gf" if loss["start_pref_gf"] else "limit_pref_gf"
        problems.append(Problem(f"loss/{key}", "the generalised-force loss is not implemented "
                                "by deepmd_tebd: the gf prefactors must be 0"))
    if loss and loss["enable_atom_ener_coeff"]:
        problems.append(Problem("loss/enable_atom_ener_coeff", "atomic energy coefficients are "
                                "not implemented by deepmd_tebd: must be false"))
    problems += data_section_problems(data["training"], desc["type"])
