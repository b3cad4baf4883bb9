"""Model compression (`dp compress`) of se_e2_a models without type embedding.

The frozen graph's weights (by DeePMD-kit's variable names), statistics and training script
rebuild the model; each embedding net becomes a table (model/tabulation.py) read by the
TabulateFusionSeA op; the graph is frozen again with `model_type = "compressed_model"` and the
script's `model/compress` section, as DeePMD-kit's deepmd/tf/entrypoints/compress.py does (it
trains zero steps from the frozen model and freezes; here no checkpoint is written).

Refused, with the reason and nothing written: a compressed graph, type embedding (se_e2_a with
type_embedding, se_a_ebd_v2), descriptor resnet_dt true, every pair excluded, activations other
than tanh.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config.compress import config_of_graph_script, with_compress_section
from ..config.objects import names_stripped_type_embedding, names_type_embedding
from . import node_names as nn
from .frozen import freeze_graph_def, model_graph_def, read_graph_def, write_atomic
from .weight_names import assign_graph_weights, graph_constants

log = logging.getLogger("deepmd_tebd")


class CompressionRefused(Exception):
    """`dp compress` cannot compress this model; the message says why."""


def uses_type_embedding(graph_def, script: dict | None) -> bool:
    """Whether the training script or the graph shows a type embedding."""
    if script is not None and names_type_embedding(script):
        return True
    return any(node.name == nn.T_TYPEEBD or node.name.startswith(nn.TYPE_EMBED_NET + "/")
               for node in graph_def.node)


def is_stripped_type_embedding(graph_def, script: dict | None) -> bool:
    """Whether the training script's descriptor or the graph's type-net variables
    (`filter_type_all/*_side_ebd`) show a se_a_ebd_v2 model."""
    if script is not None and names_stripped_type_embedding(script):
        return True
    return any(node.name.startswith("filter_type_all/") and node.name.endswith("_side_ebd")
               for node in graph_def.node)


def _script(graph_def, constants, training_script, input):
    if training_script is not None:
        path = Path(training_script)
        if not path.is_file():
            raise CompressionRefused(f"{path}: no such training script (-t)")
        return json.loads(path.read_text())
    if nn.TRAIN_ATTR_TRAINING_SCRIPT in constants:
        raw = constants[nn.TRAIN_ATTR_TRAINING_SCRIPT]
        return json.loads(raw.item().decode() if hasattr(raw, "item") else raw)
    raise CompressionRefused(
        f"{input} has no training script (train_attr/training_script); give the one it was "
        "trained with by -t")


def _refuse_unsupported(graph_def, constants, script, input, output):
    """Compressed already, or type embedding: refused before the script is read further."""
    model_type = constants.get(nn.MODEL_TYPE)
    if model_type is not None and model_type.item() == nn.COMPRESSED_MODEL.encode():
        raise CompressionRefused(f"{input}: the model is already compressed; nothing was "
                                 f"written to {output}")
    if is_stripped_type_embedding(graph_def, script):
        raise CompressionRefused(
            f"{input}: model compression is not supported for se_a_ebd_v2: deepmd_tebd "
            "compresses no model with type embedding (DeePMD-kit >= 2.2.6 tabulates this "
            "descriptor's radial net and precomputes its type net; deepmd_tebd does not). The "
            f"uncompressed model runs as it is; nothing was written to {output}.")
    if uses_type_embedding(graph_def, script):
        raise CompressionRefused(
            f"{input}: model compression is not supported for se_e2_a with type_embedding: "
            "compression tabulates each embedding net as a function of s(r) alone, and the "
            "shared embedding net of a type-embedding model also takes the atom types' "
            "embeddings as input, so it cannot be tabulated. The uncompressed model runs "
            f"as it is; nothing was written to {output}.")


def _min_nbor_dist(constants, config, input) -> float:
    if nn.TRAIN_ATTR_MIN_NBOR_DIST in constants:
        return float(constants[nn.TRAIN_ATTR_MIN_NBOR_DIST])
    # DeePMD-kit computes it from the training data of -t (compress.py, stage 0)
    from ..data.neighbor_stat import neighbor_stat

    log.info("stage 0: compute the min_nbor_dist")
    training = config.training
    return float(neighbor_stat(training.training_data.systems, config.model.descriptor.rcut,
                               config.model.type_map or None)[0])


def tabulate_model(model, min_nbor_dist: float, extrapolate: float, step: float,
                   frequency: int) -> dict:
    """{net attribute name: NetTable} of every embedding net of `model`'s descriptor
    (DeePMD-kit's DPTabulate.build with stride1 = 10 step)."""
    from ..model.tabulation import embedding_table, env_mat_range

    descriptor = model.descriptor
    lower, upper = env_mat_range(descriptor.davg.numpy(), descriptor.dstd.numpy(), min_nbor_dist,
                                 descriptor.rcut_smth, descriptor.rcut)
    tables = {}
    for name in descriptor.net_names():
        if descriptor.type_one_side:  # filter_type_all_<j>: the centre types that use it
            j = int(name.rsplit("_", 1)[1])
            use = [(i, j) not in descriptor._excluded and descriptor.sel[i] > 0
                   for i in range(descriptor.ntypes)]
            ll, uu = lower[use].min(), upper[use].max()
        else:  # filter_type_<i>_<j>
            i = int(name.split("_")[2])
            ll, uu = lower[i], upper[i]
        hidden, _ = getattr(descriptor, name).layer_variables()
        layers = [(w.numpy(), b.numpy()) for w, b, _ in hidden]
        tables[name] = embedding_table(layers, ll, uu, extrapolate, step, 10 * step, frequency)
    return tables


def compress(input: str, output: str, step: float = 0.01, extrapolate: int = 5,
             frequency: int = -1, training_script: str | None = None) -> None:
    """`dp compress`: the frozen se_e2_a model `input` with tabulated embedding nets, written
    atomically to `output`; CompressionRefused (nothing written) when it cannot be."""
    from ..model import EnergyModel

    graph_def = read_graph_def(input)
    constants = graph_constants(graph_def)
    script = _script(graph_def, constants, training_script, input)
    _refuse_unsupported(graph_def, constants, script, input, output)
    config = config_of_graph_script(script, str(training_script or input))
    descriptor = config.model.descriptor
    if descriptor.resnet_dt:
        raise CompressionRefused(f"{input}: model compression needs descriptor resnet_dt "
                                 "false (DeePMD-kit's DescrptSeA.enable_compression refuses it "
                                 f"too); nothing was written to {output}")
    if descriptor.activation_function != "tanh":
        raise CompressionRefused(f"{input}: deepmd_tebd tabulates tanh embedding nets only "
                                 f"(activation {descriptor.activation_function}); nothing was "
                                 f"written to {output}")
    model = EnergyModel(config.model)
    model.build()
    if not model.descriptor.net_names():
        raise CompressionRefused(f"{input}: every pair of types is excluded, there is no "
                                 f"embedding net to tabulate; nothing was written to {output}")
    missing = assign_graph_weights(model.graph_variables(), constants)
    if missing:
        raise CompressionRefused(f"{input}: the graph lacks the weights {missing[:4]}... under "
                                 "DeePMD-kit's variable names; freeze it again with `dp freeze`")
    min_dist = _min_nbor_dist(constants, config, input)
    model.descriptor.enable_compression(tabulate_model(model, min_dist, extrapolate, step,
                                                       frequency))
    config = with_compress_section(config, {
        "model_file": str(input), "min_nbor_dist": min_dist,
        "table_config": [extrapolate, step, 10 * step, int(frequency)], "type": "se_e2_a"})
    graph = freeze_graph_def(model_graph_def(model, config, min_dist))
    write_atomic(output, graph.SerializeToString())
    log.info(f"{len(graph.node)} ops in the compressed graph {output}")
