"""`dp freeze`: the newest checkpoint of a training folder as a frozen model (.pb)."""
from __future__ import annotations


def run(checkpoint_folder: str = ".", output: str = "frozen_model.pb",
        node_names: str | None = None, best: bool = False) -> int:
    """Freezes the newest checkpoint in `checkpoint_folder` to `output`, keeping `node_names`
    (comma-separated; default: the model's outputs and attributes); `best`: the best model's
    checkpoint instead of the newest."""
    from ..infer.frozen import freeze
    from ..store.outputs import check_output

    check_output(output, "the frozen model (-o)")
    nodes = None if node_names is None else [n.strip() for n in node_names.split(",")
                                              if n.strip()]
    freeze(checkpoint_folder, output, nodes, best)
    return 0
