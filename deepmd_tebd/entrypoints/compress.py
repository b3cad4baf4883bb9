"""`dp compress`: refused, with the reason, and nothing written.

A model with type embedding cannot be compressed: compression tabulates each embedding net as a
function of the scalar s(r) alone, but with type embedding the one shared net also takes the
neighbour's (and centre's) type embedding as input. Tabulating the per-type nets of a model
without type embedding is not implemented in this package.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("deepmd_tebd")


class CompressionRefused(Exception):
    """`dp compress` cannot compress this model; the message says why."""


def _uses_type_embedding(graph_def, script: dict | None) -> bool:
    if script is not None and script.get("model", {}).get("type_embedding") is not None:
        return True
    return any(node.name == "t_typeebd" or node.name.startswith("type_embed_net/")
               for node in graph_def.node)


def run(input: str = "frozen_model.pb", output: str = "frozen_model_compressed.pb",
        training_script: str | None = None) -> int:
    from ..infer.frozen import read_graph_def

    graph_def = read_graph_def(input)
    script = None
    if training_script is not None:
        path = Path(training_script)
        if not path.is_file():
            raise CompressionRefused(f"{path}: no such training script (-t)")
        script = json.loads(path.read_text())
    else:
        for node in graph_def.node:
            if node.name == "train_attr/training_script":
                script = json.loads(node.attr["value"].tensor.string_val[0].decode())
    if any(node.name == "model_type" and node.attr["value"].tensor.string_val[:1] ==
           [b"compressed_model"] for node in graph_def.node):
        raise CompressionRefused(f"{input}: the model is already compressed")
    if _uses_type_embedding(graph_def, script):
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
