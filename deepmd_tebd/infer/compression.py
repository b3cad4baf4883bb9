"""Model compression (`dp compress`): refused, with the reason, and nothing written.

A model with type embedding (se_e2_a with type_embedding, se_a_ebd_v2) is not compressed: compression tabulates each embedding net as a
function of the scalar s(r) alone, but with type embedding the one shared net also takes the
neighbour's (and centre's) type embedding as input. Tabulating the per-type nets of a model
without type embedding is not implemented in this package.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config.objects import names_stripped_type_embedding, names_type_embedding
from . import node_names as nn
from .frozen import read_graph_def


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


def compress(input: str, output: str, training_script: str | None = None) -> None:
    """Refuses to compress the frozen model `input` into `output`, saying why.

    The training script is `training_script` (-t), else the graph's own (DeePMD-kit's
    `deepmd/tf/entrypoints/compress.py: compress` reads the graph's and needs -t only without
    one); a model compressed already is refused, as in its `_check_compress_type`."""
    graph_def = read_graph_def(input)
    script = None
    if training_script is not None:
        path = Path(training_script)
        if not path.is_file():
            raise CompressionRefused(f"{path}: no such training script (-t)")
        script = json.loads(path.read_text())
    else:
        for node in graph_def.node:
            if node.name == nn.TRAIN_ATTR_TRAINING_SCRIPT:
                script = json.loads(node.attr["value"].tensor.string_val[0].decode())
    if any(node.name == nn.MODEL_TYPE and node.attr["value"].tensor.string_val[:1] ==
           [nn.COMPRESSED_MODEL.encode()] for node in graph_def.node):
        raise CompressionRefused(f"{input}: the model is already compressed")
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
    raise CompressionRefused(
        f"{input}: model compression is not implemented yet in deepmd_tebd (the model has no "
        f"type embedding, so DeePMD-kit's `dp compress` can compress it); nothing was written "
        f"to {output}.")
