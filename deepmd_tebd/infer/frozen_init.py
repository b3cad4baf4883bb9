"""`dp train --init-frz-model graph.pb`: a model's weights and statistics from a frozen graph, as
DeePMD-kit's deepmd/tf/train/trainer.py (_init_from_frz_model) and the models' init_variables
read them: every variable from the graph constant of its DeePMD-kit name (`filter_type_i/...`,
`layer_k_type_i/...`, `final_layer...`, `type_embed_net/...`, `descrpt_attr/t_avg`, `t_std`,
`fitting_attr/t_bias_atom_e`), after checking the graph's `model_type`.

A compressed graph (`model_type = "compressed_model"`, ours or DeePMD-kit's `dp compress`)
holds tables instead of embedding nets. DeePMD-kit 3.2 then imports the graph's descriptor as it
is (deepmd/tf/model/model.py: build_descrpt with frz_model; EnerModel.init_variables reads the
fitting net only): the tables, their table_info (lower, upper, extrapolation, strides, check
frequency) and davg/dstd come from the graph (an input's model/compress section is ignored
there; `dp train` here refuses it, entrypoints/train.py), only the fitting net trains, and
`dp freeze` writes a compressed graph again (trainer.py, build: model_type "compressed_model")
whose training script is the input script. Here the descriptor is compressed with the graph's
tables (`tables_of_graph`), its embedding nets are frozen (not trained, not frozen into graphs)
and the tables travel in the checkpoints (train/compressed_tables.py).
"""
from __future__ import annotations

import logging
import re

import numpy as np

from ..model.tabulation import NetTable
from . import node_names as nn
from .frozen import ModelFileError, read_graph_def
from .weight_names import assign_graph_weights, graph_constants

log = logging.getLogger("deepmd_tebd")
TABULATE_OP = "TabulateFusionSeA"


def _natural_key(name: str) -> list:
    # `filter_type_10/TabulateFusionSeA_2` after `filter_type_2/TabulateFusionSeA`; the op
    # without a suffix is the first of its scope
    name = name if re.search(r"_\d+$", name) else name + "_0"
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _constant_input(by_name: dict, name: str):
    """The value of the Const behind `name`, through Identity and Cast nodes (None: not one)."""
    node = by_name.get(name.lstrip("^").split(":")[0])
    cast = None
    while node is not None and node.op in ("Identity", "Cast"):
        cast = cast or (node.attr["DstT"].type if node.op == "Cast" else None)
        node = by_name.get(node.input[0].split(":")[0])
    if node is None or node.op != "Const":
        return None
    import tensorflow as tf

    value = tf.make_ndarray(node.attr["value"].tensor)
    return value if cast is None else value.astype(tf.as_dtype(cast).as_numpy_dtype)


def tables_of_graph(graph_def, net_names: list[str], path) -> dict:
    """{net name: NetTable} of a compressed se_e2_a graph: its TabulateFusionSeA ops in scope
    and suffix order (DeePMD-kit: `filter_type_i/TabulateFusionSeA_k`, centre type i outer,
    neighbour type inner; ours: one scope in the same order), matched to `net_names`, the
    descriptor's nets in that order (excluded pairs have neither); ModelFileError when they
    do not match."""
    by_name = {node.name: node for node in graph_def.node}
    ops = sorted((node for node in graph_def.node if node.op == TABULATE_OP),
                 key=lambda node: _natural_key(node.name))
    if len(ops) != len(net_names):
        raise ModelFileError(
            f"{path}: the compressed graph has {len(ops)} tabulated embedding nets "
            f"({TABULATE_OP} ops), the descriptor of the input script {len(net_names)}; "
            "the input script's model/descriptor must be the one the graph was trained with")
    tables = {}
    for name, node in zip(net_names, ops):
        table = _constant_input(by_name, node.input[0])
        info = _constant_input(by_name, node.input[1])
        if table is None or info is None or np.shape(info) != (6,):
            raise ModelFileError(f"{path}: the table or table_info of {node.name} is not a "
                                 "constant of the graph")
        tables[name] = NetTable(np.asarray(table), tuple(float(x) for x in info))
    return tables


def _init_compressed(model, constants: dict, graph_def, path) -> None:
    descriptor = model.descriptor
    reason = descriptor.tabulation_refusal(from_nets=False)
    if reason is not None:
        raise ModelFileError(f"{path}: a compressed graph, and the descriptor of the input "
                             f"script cannot run on its tables: {reason}")
    rcut = constants.get(nn.DESCRPT_ATTR_RCUT)
    if rcut is not None and not np.isclose(float(rcut), descriptor.rcut, rtol=0, atol=1e-12):
        raise ModelFileError(f"{path}: the graph's descriptor rcut {float(rcut)} differs from "
                             f"the input script's model/descriptor/rcut {descriptor.rcut}")
    tables = tables_of_graph(graph_def, descriptor.net_names(), path)
    width = 6 * descriptor.neuron[-1]
    for name, table in tables.items():
        if table.table.ndim != 2 or table.table.shape[1] != width:
            raise ModelFileError(
                f"{path}: the graph's table of {name} has {table.table.shape[-1] // 6} "
                f"output channels, the input script's model/descriptor/neuron ends with "
                f"{descriptor.neuron[-1]}")
    # the embedding nets are not in the graph: everything else is
    embedding = set()
    for mlp in descriptor.nets():
        embedding.update(mlp.graph_variables())
    variables = {k: v for k, v in model.graph_variables().items() if k not in embedding}
    _assign(variables, constants, path)
    descriptor.freeze_compressed(tables)
    log.info(f"initialize model from compressed frozen model {path}: the embedding nets are "
             "its tables (not trained), the fitting net trains")


def _assign(variables: dict, constants: dict, path) -> None:
    try:
        missing = assign_graph_weights(variables, constants)
    except ValueError as err:
        raise ModelFileError(f"{path}: the graph does not fit the model of the input script: "
                             f"{err}") from None
    if missing:
        raise ModelFileError(f"{path}: the graph lacks the weights {missing} that the model of "
                             "the input script has (a graph of another architecture, or one "
                             "frozen without DeePMD-kit's variable names)")


def init_from_frozen_model(model, path) -> None:
    """Assigns `model` (built) the weights and statistics of the frozen model at `path` (a
    compressed one: also its tables, see the module text); ModelFileError (naming the file)
    when the graph does not fit the model."""
    graph_def = read_graph_def(path)
    constants = graph_constants(graph_def)
    model_type = constants.get(nn.MODEL_TYPE)
    if model_type is None:
        raise ModelFileError(f"{path}: the frozen model has no 'model_type' node, which "
                             "--init-frz-model needs (as in DeePMD-kit)")
    kind = model_type.item().decode()
    if kind == nn.COMPRESSED_MODEL:
        _init_compressed(model, constants, graph_def, path)
        return
    if kind != nn.ORIGINAL_MODEL:
        raise ModelFileError(f"{path}: unknown model_type {kind!r}")
    _assign(model.graph_variables(), constants, path)
    log.info(f"initialize model from frozen model {path}")
