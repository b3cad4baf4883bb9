"""`dp train --init-frz-model graph.pb`: a model's weights and statistics from a frozen graph, as
DeePMD-kit's deepmd/tf/train/trainer.py (_init_from_frz_model) and the models' init_variables
read them: every variable from the graph constant of its DeePMD-kit name (`filter_type_i/...`,
`layer_k_type_i/...`, `final_layer...`, `type_embed_net/...`, `descrpt_attr/t_avg`, `t_std`,
`fitting_attr/t_bias_atom_e`), after checking the graph's `model_type`.

A compressed graph holds tables instead of embedding nets; DeePMD-kit then imports its
compressed descriptor and trains the fitting net only. deepmd_tebd refuses it (see the message).
"""
from __future__ import annotations

import logging

from . import node_names as nn
from .frozen import ModelFileError, read_graph_def
from .weight_names import assign_graph_weights, graph_constants

log = logging.getLogger("deepmd_tebd")


def init_from_frozen_model(model, path) -> None:
    """Assigns `model` (built) the weights and statistics of the frozen model at `path`;
    ModelFileError (naming the file) when the graph does not fit the model."""
    constants = graph_constants(read_graph_def(path))
    model_type = constants.get(nn.MODEL_TYPE)
    if model_type is None:
        raise ModelFileError(f"{path}: the frozen model has no 'model_type' node, which "
                             "--init-frz-model needs (as in DeePMD-kit)")
    kind = model_type.item().decode()
    if kind == nn.COMPRESSED_MODEL:
        raise ModelFileError(f"{path}: a compressed model; deepmd_tebd initialises only from "
                             "uncompressed frozen models (use the graph before `dp compress`)")
    if kind != nn.ORIGINAL_MODEL:
        raise ModelFileError(f"{path}: unknown model_type {kind!r}")
    try:
        missing = assign_graph_weights(model.graph_variables(), constants)
    except ValueError as err:
        raise ModelFileError(f"{path}: the graph does not fit the model of the input script: "
                             f"{err}") from None
    if missing:
        raise ModelFileError(f"{path}: the graph lacks the weights {missing} that the model of "
                             "the input script has (a graph of another architecture, or one "
                             "frozen without DeePMD-kit's variable names)")
    log.info(f"initialize model from frozen model {path}")
