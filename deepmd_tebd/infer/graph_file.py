"""A frozen model file read and checked: `read_graph_def` returns the GraphDef of a `.pb` that
is a DeePMD-kit energy model (its inputs, outputs and attributes by node_names.py), or a
ModelFileError naming the file and what is wrong; `check_version` the model versions read."""
from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from . import node_names as nn

__all__ = ["ModelFileError", "check_model_file", "check_version", "read_graph_def"]


class ModelFileError(Exception):
    """A model file that cannot be used: missing, unreadable, not a DeePMD frozen energy model,
    or of a version this package does not know. The message names the file."""


def check_model_file(path: str | os.PathLike) -> Path:
    """`path` as a Path, or ModelFileError when it is no file or has not the suffix .pb."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix != ".pb":
        raise ModelFileError(f"{path}: a frozen TensorFlow model must have the suffix .pb "
                             f"(got {path.suffix or 'none'})")
    return path


def read_graph_def(path: str | os.PathLike) -> tf.compat.v1.GraphDef:
    """The GraphDef of a `.pb` file, or ModelFileError naming the file and what is wrong."""
    path = check_model_file(path)
    data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path}: not a TensorFlow GraphDef (truncated or another file "
                             f"format): {err}") from None
    names = {node.name for node in graph_def.node}
    if not names:
        raise ModelFileError(f"{path}: the file holds no graph")
    missing = [n for n in nn.INPUTS + nn.OUTPUTS + nn.ATTRIBUTES if n not in names]
    if missing:
        raise ModelFileError(f"{path}: not a DeePMD-kit energy model: the nodes {missing} are "
                             "missing")
    return graph_def


def check_version(path, version: str) -> None:
    """Model version major 1, minor <= 1 (what DeePMD-kit 2.2 and 3.x read)."""
    try:
        major, minor = (int(x) for x in version.split("."))
    except ValueError:
        raise ModelFileError(f"{path}: invalid model version string {version!r}") from None
    want_major, want_minor = (int(x) for x in nn.MODEL_VERSION.split("."))
    if major != want_major or minor > want_minor:
        raise ModelFileError(f"{path}: model version {version} is not supported (this package "
                             f"reads version {nn.MODEL_VERSION} and older 1.x); convert it with "
                             "DeePMD-kit's `dp convert-from`")
