"""Builders of the JSON-schema entries of the input declaration (config/schema.py): a key of a
type with its default and description, a section of keys, a key DeePMD-kit knows and this
package refuses."""
from __future__ import annotations

__all__ = ["ACTIVATIONS", "PRECISIONS", "activation", "boolean", "integer", "integers", "key",
           "number", "precision", "section", "seed", "string", "unsupported"]

ACTIVATIONS = ["relu", "relu6", "softplus", "sigmoid", "tanh", "gelu", "gelu_tf", "None", "none"]
PRECISIONS = ["default", "float16", "float32", "float64", "bfloat16"]


def key(type_, default=..., doc="", **extra):
    """A key of JSON type `type_` (a default only when given)."""
    schema = {"type": type_, "description": doc, **extra}
    if default is not ...:
        schema["default"] = default
    return schema


def integer(default=..., doc="", minimum=None, **extra):
    """An integer key, >= minimum when given."""
    if minimum is not None:
        extra["minimum"] = minimum
    return key("integer", default, doc, **extra)


def number(default=..., doc="", **extra):
    """A number key."""
    return key("number", default, doc, **extra)


def boolean(default=..., doc=""):
    """A boolean key."""
    return key("boolean", default, doc)


def string(default=..., doc="", **extra):
    """A string key."""
    return key("string", default, doc, **extra)


def integers(default=..., doc="", minimum=1, **extra):
    """A list of integers >= minimum."""
    return key("array", default, doc, items={"type": "integer", "minimum": minimum},
               **{"x-expect": f"a list of integers >= {minimum}", **extra})


def seed(doc="random seed of the initial parameters; null for a random one", default=...):
    """A random seed: an integer or null."""
    return key(["integer", "null"], default, doc)


def section(properties, required=(), doc="", **extra):
    """A mapping of the keys `properties` and no others."""
    return {"type": "object", "description": doc, "properties": properties,
            "required": list(required), "additionalProperties": False, **extra}


def unsupported(reason, type_=None):
    """A key DeePMD-kit knows and this package refuses with `reason`."""
    schema = {"x-unsupported": reason, "description": reason}
    if type_:
        schema["type"] = type_
    return schema


def activation(doc="activation function"):
    """An activation function name (default tanh)."""
    return string("tanh", doc, enum=ACTIVATIONS)


def precision(doc="floating-point precision of the parameters and of the computation"):
    """A precision name (default "default")."""
    return string("default", doc, enum=PRECISIONS)
