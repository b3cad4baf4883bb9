"""`dp train INPUT --finetune PRETRAINED.pb`: a pretrained type-embedding model trained further
on the user's data, as DeePMD-kit 3.2's TensorFlow backend does it (deepmd/tf/utils/finetune.py,
DPTrainer._init_from_pretrained_model):

1. the script (config/finetune.py): the graph's `train_attr/training_script` gives the model.
   Its type map replaces the user's, which must name only types it has (empty: the first
   training system's type_map.raw). Each of type_embedding, descriptor and fitting_net is the
   pretrained one; the user's `trainable` is kept where the user gave the section. A
   type_embedding the pretrained script lacks is dropped (kept frozen, {"trainable": false,
   "activation_function": "None"}, where the user froze it).
2. the model: every weight and the descriptor statistics come from the graph (no data
   statistics); a compressed graph is refused.
3. the energy bias: on the first `model/data_bias_nsample` frames of each training system, the
   least-squares change of the user types' biases that removes the label-minus-prediction
   residual, the other types' biases untouched (train/change_bias.py). DeePMD-kit draws the
   frames from a shuffled copy of the system; with at most data_bias_nsample frames per system
   both take the same frames.

DeePMD-kit's TF backend fine-tunes se_atten and se_atten_v2 models only; here every model with
a type embedding can be fine-tuned (se_e2_a with type_embedding, se_a_ebd_v2). A model without
one is refused: its per-type nets do not carry over to another type map.
"""
from __future__ import annotations

import json

from ..data.errors import DataError
from ..infer import node_names as nn
from ..infer.graph_file import ModelFileError, read_graph_def
from ..infer.weight_names import graph_constants


def pretrained_script(path: str) -> dict:
    """The training script of the frozen graph at `path`; ModelFileError when it has none or
    is compressed."""
    constants = graph_constants(read_graph_def(path))
    model_type = constants.get(nn.MODEL_TYPE)
    if model_type is not None and model_type.item() == nn.COMPRESSED_MODEL.encode():
        raise ModelFileError(f"{path}: a compressed model cannot be fine-tuned; fine-tune the "
                             "graph it was compressed from")
    raw = constants.get(nn.TRAIN_ATTR_TRAINING_SCRIPT)
    if raw is None:
        raise ModelFileError(f"{path}: the graph has no training script "
                             "(train_attr/training_script), which fine-tuning needs (graphs of "
                             "DeePMD-kit 2.1.5 and later, and of this package, have one)")
    try:
        return json.loads(raw.item().decode() if hasattr(raw, "item") else raw)
    except ValueError:
        raise ModelFileError(f"{path}: train_attr/training_script is not JSON") from None


def origin_types(user_types: list, systems, full: list) -> list[int]:
    """Indices in the pretrained type map `full` of the types whose bias is re-fitted: the
    user's type map, or (empty) the first training system's type_map.raw."""
    if user_types:
        return [full.index(n) for n in user_types]  # merge_pretrained checked them
    path = systems[0].path / "type_map.raw"
    if not path.is_file():
        raise DataError(f"{systems[0].path}: fine-tuning without model/type_map takes the "
                        "types whose bias is re-fitted from type_map.raw, which is missing")
    names = path.read_text().split()
    unknown = [n for n in names if n not in full]
    if unknown:
        raise DataError(f"{path}: types {unknown} are not in the pretrained type map {full}")
    return [full.index(n) for n in names]
