"""Model compression (`dp compress`) of se_e2_a models without type embedding.

The frozen graph's weights (by DeePMD-kit's variable names), statistics and training script
rebuild the model; each embedding net becomes a table (model/tabulation.py) read by the
TabulateFusionSeA op; the graph is frozen again with `model_type = "compressed_model"` and the
script's `model/compress` section, as DeePMD-kit's deepmd/tf/entrypoints/compress.py does (it
trains zero steps from the frozen model and freezes; here no checkpoint is written).

Refused, with the reason and nothing written: a compressed graph, and every descriptor that says
it cannot be tabulated (model/descriptor.py: Descriptor.tabulation_refusal; se_e2_a refuses type
embedding, resnet_dt true, every pair excluded and activations other than tanh; se_a_ebd_v2 and
other descriptors refuse always).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config.compress import (config_of_graph_script, descriptor_config_of_graph_script,
                               with_compress_section)
from ..config.errors import ConfigError
from . import node_names as nn
from ..store.atomic import write_atomic
from .frozen import freeze_graph_def, model_graph_def
from .graph_file import read_graph_def
from .weight_names import assign_graph_weights, graph_constants, graph_script, is_compressed

log = logging.getLogger("deepmd_tebd")


class CompressionRefused(Exception):
    """`dp compress` cannot compress this model; the message says why."""


def _script(graph_def, constants, training_script, input):
    if training_script is not None:
        path = Path(training_script)
        if not path.is_file():
            raise CompressionRefused(f"{path}: no such training script (-t)")
        return json.loads(path.read_text())
    script = graph_script(constants)
    if script is not None:
        return script
    raise CompressionRefused(
        f"{input} has no training script (train_attr/training_script); give the one it was "
        "trained with by -t")


def _refuse_compressed(constants, input, output) -> None:
    """A compressed graph is refused before its script is read."""
    if is_compressed(constants):
        raise CompressionRefused(f"{input}: the model is already compressed; nothing was "
                                 f"written to {output}")


def _descriptor_refusal(script, source: str):
    """Why the script's descriptor cannot be tabulated (None: it can, or the script does not say
    which descriptor it is), from its descriptor section alone
    (config/compress.py: descriptor_config_of_graph_script)."""
    from ..model import EnergyModel

    try:
        config = descriptor_config_of_graph_script(script, source)
    except ConfigError:
        return None
    return EnergyModel(config.model).descriptor.tabulation_refusal()


def _config(script, source: str, input, output):
    """The settings of the graph's script; a script this package cannot read is refused with
    the reason its descriptor gives when it has one (it cannot be tabulated), else as such."""
    try:
        return config_of_graph_script(script, source)
    except ConfigError:
        reason = _descriptor_refusal(script, source)
        if reason is not None:
            raise CompressionRefused(f"{input}: {reason}; nothing was written to "
                                     f"{output}") from None
        raise


def _min_nbor_dist(constants, config, input) -> float:
    if nn.TRAIN_ATTR_MIN_NBOR_DIST in constants:
        return float(constants[nn.TRAIN_ATTR_MIN_NBOR_DIST])
    # DeePMD-kit computes it from the training data of -t (compress.py, stage 0)
    from ..data.neighbor_stat import neighbor_stat

    log.info("stage 0: compute the min_nbor_dist")
    training = config.training
    return float(neighbor_stat(training.training_data.systems, config.model.descriptor.rcut,
                               config.model.type_map or None)[0])


def compress(input: str, output: str, step: float = 0.01, extrapolate: int = 5,
             frequency: int = -1, training_script: str | None = None) -> None:
    """`dp compress`: the frozen model `input` with tabulated embedding nets, written atomically
    to `output`; CompressionRefused (nothing written) when its descriptor cannot be tabulated
    (the descriptor says why: model/descriptor.py, Descriptor.tabulation_refusal)."""
    from ..model import EnergyModel

    graph_def = read_graph_def(input)
    constants = graph_constants(graph_def)
    _refuse_compressed(constants, input, output)
    script = _script(graph_def, constants, training_script, input)
    config = _config(script, str(training_script or input), input, output)
    model = EnergyModel(config.model)
    model.build()
    reason = model.descriptor.tabulation_refusal()
    if reason is not None:
        raise CompressionRefused(f"{input}: {reason}; nothing was written to {output}")
    missing = assign_graph_weights(model.graph_variables(), constants)
    if missing:
        raise CompressionRefused(f"{input}: the graph lacks the weights {missing[:4]}... under "
                                 "DeePMD-kit's variable names; freeze it again with `dp freeze`")
    min_dist = _min_nbor_dist(constants, config, input)
    model.descriptor.enable_compression(
        model.descriptor.tabulate(min_dist, extrapolate, step, frequency))
    config = with_compress_section(config, {
        "model_file": str(input), "min_nbor_dist": min_dist,
        "table_config": [extrapolate, step, 10 * step, int(frequency)],
        "type": config.model.descriptor.type})
    graph = freeze_graph_def(model_graph_def(model, config, min_dist))
    write_atomic(output, graph.SerializeToString())
    log.info(f"{len(graph.node)} ops in the compressed graph {output}")
