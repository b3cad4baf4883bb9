"""Frozen graphs name their weight constants as DeePMD-kit's variables.

TensorFlow's conversion of a traced function to constants names each weight after the
placeholder that captured its variable (`.../ReadVariableOp/resource`). DeePMD-kit's frozen
graphs hold each weight as a Const named as its variable (`filter_type_0/matrix_1_0`,
`layer_0_type_1/bias`, `final_layer_type_0/matrix`, `type_embed_net/matrix_1`,
`descrpt_attr/t_avg`, `fitting_attr/t_bias_atom_e`, ...), and its tools find them by those names
(deepmd/tf/utils/graph.py: get_embedding_net_nodes_from_graph_def, get_fitting_net_variables,
read by `dp compress` and `dp train --init-frz-model`). `name_weight_constants` renames ours so.
"""
from __future__ import annotations

import json

import tensorflow as tf

from . import node_names as nn

__all__ = ["assign_graph_weights", "graph_constants", "graph_script", "is_compressed",
           "name_weight_constants"]


def _split_input(name: str) -> tuple[str, str, str]:
    """('^' or '', node name, ':k' or '') of a GraphDef input string."""
    control = "^" if name.startswith("^") else ""
    base = name[len(control):]
    node, sep, port = base.partition(":")
    return control, node, (sep + port) if sep else ""


def name_weight_constants(graph_def, concrete, variables: dict):
    """The GraphDef (converted from `concrete`, a concrete function that captured the
    `variables` {DeePMD-kit name: variable}) with each variable's constant renamed to its
    DeePMD-kit name; a variable captured more than once keeps one constant."""
    by_handle = {id(var.handle): name for name, var in variables.items()}
    wanted = {}  # placeholder (now constant) node name -> DeePMD-kit name
    for external, internal in concrete.graph.captures:
        name = by_handle.get(id(external))
        if name is not None:
            wanted[internal.op.name] = name
    taken = {node.name for node in graph_def.node} - set(wanted)
    clash = sorted(set(wanted.values()) & taken)
    if clash:
        raise ValueError(f"graph nodes already named as weights: {clash}")
    rename, kept = {}, set()
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        target = wanted.get(node.name)
        if target is not None:
            rename[node.name] = target
            if target in kept:
                continue  # a second capture of the same variable
            kept.add(target)
        new = out.node.add()
        new.CopyFrom(node)
        if target is not None:
            new.name = target
    for node in out.node:
        for k, name in enumerate(node.input):
            control, base, port = _split_input(name)
            if base in rename:
                node.input[k] = control + rename[base] + port
    return out


def graph_constants(graph_def) -> dict:
    """{node name: NumPy value} of every Const node of a GraphDef."""
    return {node.name: tf.make_ndarray(node.attr["value"].tensor)
            for node in graph_def.node if node.op == "Const"}


def is_compressed(constants: dict) -> bool:
    """Whether the graph of `constants` (`graph_constants`) is a compressed model."""
    model_type = constants.get(nn.MODEL_TYPE)
    return model_type is not None and model_type.item() == nn.COMPRESSED_MODEL.encode()


def graph_script(constants: dict) -> dict | None:
    """The training script the graph of `constants` carries (train_attr/training_script), or
    None where it has none; json.JSONDecodeError (a ValueError) where it is not JSON."""
    raw = constants.get(nn.TRAIN_ATTR_TRAINING_SCRIPT)
    if raw is None:
        return None
    return json.loads(raw.item().decode() if hasattr(raw, "item") else raw)


def assign_graph_weights(variables: dict, constants: dict, skip=()) -> list[str]:
    """Assigns each variable {DeePMD-kit name: variable} the graph constant of its name; returns
    the names that the graph lacks (except those starting with a prefix in `skip`), unassigned."""
    missing = []
    for name, var in variables.items():
        if name in constants:
            value = constants[name]
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"the graph's {name} has shape {value.shape}, the model's "
                                 f"variable {tuple(var.shape)}")
            var.assign(value.astype(tf.as_dtype(var.dtype).as_numpy_dtype))
        elif not any(name.startswith(prefix) for prefix in skip):
            missing.append(name)
    return missing
