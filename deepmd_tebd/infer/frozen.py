"""Frozen models: a trained EnergyModel as a constant GraphDef with DeePMD-kit's node names, and
the checks that a `.pb` file is such a model.

Interface of the graph (DeePMD-kit model version 1.1):

* inputs (placeholders, flat): `t_coord` float64 [nf*nall*3], `t_type` int32 [nf*nall] (local
  atoms sorted by type, then ghosts), `t_natoms` int32 [2+ntypes] (nloc, nall, local atoms per
  type), `t_box` float64 [nf*9], `t_mesh` int32 (length 0: open boundaries, 6: periodic box,
  >= 16: a neighbour list supplied by the caller, as LAMMPS does), `t_fparam` / `t_aparam` when
  the model has frame / atomic parameters;
* outputs: `o_energy` [nf], `o_force` [nf, nall*3], `o_virial` [nf, 9], `o_atom_energy`
  [nf, nloc], `o_atom_virial` [nf, nall*9], `o_descriptor`, `o_rmat`, `o_rmat_deriv`, `o_rij`,
  `o_nlist`, and `t_typeebd` with type embedding; as in DeePMD-kit's graphs the descriptor's
  consumers read `o_descriptor`, `o_rmat`, ... (route_through_outputs), so they are kept;
* constant attributes: `model_type`, `model_attr/{tmap,model_type,model_version}`,
  `descrpt_attr/{rcut,ntypes,sel,original_sel}`, `fitting_attr/{dfparam,daparam}`,
  `train_attr/{training_script,min_nbor_dist}`.

The names are those of node_names.py. The graph's only custom ops are ProdEnvMatA,
ProdForceSeA and ProdVirialSeA, registered with DeePMD-kit's names and signatures, so DeePMD-kit's
runtimes (Python, C++, LAMMPS) execute it with their own kernels.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import tensorflow as tf

from ..config.objects import Config
from ..store.atomic import write_atomic
from ..store.restore import CheckpointError, load_checkpoint_model
from . import node_names as nn
from .graph_file import ModelFileError, check_version, read_graph_def
from .weight_names import name_weight_constants

__all__ = ["CheckpointError", "ModelFileError", "check_version", "freeze", "freeze_graph_def",
           "call_flat", "load_checkpoint_model", "model_graph_def", "model_signature",
           "read_graph_def", "route_through_outputs"]

log = logging.getLogger("deepmd_tebd")


def _attribute_constants(config: Config, min_nbor_dist: float | None,
                         compressed: bool = False) -> list:
    """The constant attribute nodes, created in the graph being traced (returned, so that the
    freezing keeps them)."""
    model = config.model
    descriptor, fitting = model.descriptor, model.fitting
    sel = np.asarray(descriptor.sel, np.int32)
    values = [
        (nn.MODEL_TYPE, nn.COMPRESSED_MODEL if compressed or model.compress is not None
         else nn.ORIGINAL_MODEL, tf.string),
        (nn.MODEL_ATTR_TMAP, " ".join(model.type_map), tf.string),
        (nn.MODEL_ATTR_MODEL_TYPE, nn.ENERGY_MODEL, tf.string),
        (nn.MODEL_ATTR_MODEL_VERSION, nn.MODEL_VERSION, tf.string),
        (nn.DESCRPT_ATTR_RCUT, float(descriptor.rcut), tf.float64),
        (nn.DESCRPT_ATTR_NTYPES, model.ntypes, tf.int32),
        (nn.DESCRPT_ATTR_SEL, sel, tf.int32),
        (nn.DESCRPT_ATTR_ORIGINAL_SEL, sel, tf.int32),
        (nn.FITTING_ATTR_DFPARAM, fitting.numb_fparam, tf.int32),
        (nn.FITTING_ATTR_DAPARAM, fitting.numb_aparam, tf.int32),
        (nn.TRAIN_ATTR_TRAINING_SCRIPT, json.dumps(config.script, separators=(",", ":")),
         tf.string),
    ]
    if min_nbor_dist is not None and min_nbor_dist >= 0:
        values.append((nn.TRAIN_ATTR_MIN_NBOR_DIST, float(min_nbor_dist), tf.float64))
    return [tf.constant(value, dtype=dtype, name=name) for name, value, dtype in values]


def model_signature(model) -> list:
    """The TensorSpecs of the graph's inputs (t_coord, t_type, t_natoms, t_box, t_mesh, then
    t_fparam and t_aparam where the model has them)."""
    signature = [tf.TensorSpec([None], tf.float64, name=nn.T_COORD),
                 tf.TensorSpec([None], tf.int32, name=nn.T_TYPE),
                 tf.TensorSpec([model.ntypes + 2], tf.int32, name=nn.T_NATOMS),
                 tf.TensorSpec([None], tf.float64, name=nn.T_BOX),
                 tf.TensorSpec([None], tf.int32, name=nn.T_MESH)]
    if model.fitting.numb_fparam:
        signature.append(tf.TensorSpec([None], tf.float64, name=nn.T_FPARAM))
    if model.fitting.numb_aparam:
        signature.append(tf.TensorSpec([None], tf.float64, name=nn.T_APARAM))
    return signature


def call_flat(model, t_coord, t_type, t_natoms, t_box, t_mesh, *params) -> dict:
    """The model's outputs on the graph's flat inputs (`model_signature`)."""
    numb_fparam, numb_aparam = model.fitting.numb_fparam, model.fitting.numb_aparam
    params = list(params)
    fparam = tf.reshape(params.pop(0), [-1, numb_fparam]) if numb_fparam else None
    aparam = (tf.reshape(params.pop(0), [-1, t_natoms[0] * numb_aparam]) if numb_aparam
              else None)
    return model(t_coord, t_type, t_natoms, t_box, t_mesh, fparam=fparam, aparam=aparam)


def model_graph_def(model, config: Config,
                    min_nbor_dist: float | None = None) -> tf.compat.v1.GraphDef:
    """The whole inference graph of `model` with its variables as constants (not pruned)."""
    signature = model_signature(model)

    def graph(t_coord, t_type, t_natoms, t_box, t_mesh, *params):
        out = call_flat(model, t_coord, t_type, t_natoms, t_box, t_mesh, *params)
        # tables: `dp compress`, or trained from a compressed graph (store/restore.py)
        attributes = _attribute_constants(config, min_nbor_dist,
                                          model.descriptor.net_tables is not None)
        outputs = {key: tf.identity(out[key], name=name)
                   for key, name in nn.OUTPUT_NODES.items() if key in out}
        outputs.update({f"attribute_{i}": value for i, value in enumerate(attributes)})
        return outputs

    function = tf.function(graph, input_signature=signature, autograph=False)
    concrete = function.get_concrete_function()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    graph_def = convert_variables_to_constants_v2(concrete).graph.as_graph_def()
    graph_def = route_through_outputs(graph_def, [nn.OUTPUT_NODES[key] for key in ROUTED])
    return name_weight_constants(graph_def, concrete, model.graph_variables())


# the descriptor's outputs that DeePMD-kit's graphs compute through (`o_rmat` feeds the
# descriptor, ...): DeePMD-kit's `--init-frz-model` of a compressed graph imports the subgraph
# from the inputs to them and differentiates o_descriptor with respect to o_rmat
# (deepmd/tf/model/model.py: build_descrpt with frz_model)
# (deepmd/tf/model/model.py: build_descrpt with frz_model); and the type embedding table
# `t_typeebd`, which its compression, fine-tuning and DeepPot.eval_typeebd read
ROUTED = ("descriptor", "rmat", "rmat_deriv", "rij", "nlist", "type_embedding")


def route_through_outputs(graph_def, names) -> tf.compat.v1.GraphDef:
    """The GraphDef with every other consumer of the input of each Identity node `names`
    reading that node instead (the same values), so that the node is on the path."""
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    by_name = {node.name: node for node in out.node}
    for name in names:
        node = by_name.get(name)
        if node is None or node.op != "Identity":
            continue
        source = node.input[0]
        for other in out.node:
            if other.name == name:
                continue
            for k, inp in enumerate(other.input):
                if inp == source or (":" not in source and inp == source + ":0"):
                    other.input[k] = name
    return out


def freeze_graph_def(graph_def, node_names=None) -> tf.compat.v1.GraphDef:
    """The subgraph that `node_names` (default node_names.DEFAULT_NODES) depend on; names absent
    from the graph are left out with a warning, as DeePMD-kit does."""
    present = {node.name for node in graph_def.node}
    wanted = list(nn.DEFAULT_NODES if node_names is None else node_names)
    missing = [name for name in wanted if name not in present]
    if missing:
        log.warning(f"The following nodes are not in the graph: {missing}; they are left "
                    "out.")
    kept = [name for name in wanted if name in present]
    if not kept:
        raise ValueError(f"none of the nodes {wanted} is in the graph")
    if node_names is None:  # kept by DeePMD-kit's graphs through control dependencies
        kept += [name for name in nn.KEPT_WITH_THE_MODEL if name in present]
    log.info(f"The following nodes will be frozen: {kept}")
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, kept)


def freeze(checkpoint_folder: str | os.PathLike = ".", output: str | os.PathLike =
           "frozen_model.pb", node_names=None, best: bool = False) -> int:
    """`dp freeze`: the newest checkpoint of `checkpoint_folder` (with `best`: the best model's)
    as a frozen graph in `output`, written atomically. Returns the number of ops in the graph."""
    model, config, min_dist = load_checkpoint_model(checkpoint_folder, best)
    graph_def = freeze_graph_def(model_graph_def(model, config, min_dist), node_names)
    write_atomic(output, graph_def.SerializeToString())
    log.info(f"{len(graph_def.node)} ops in the final graph.")
    return len(graph_def.node)
