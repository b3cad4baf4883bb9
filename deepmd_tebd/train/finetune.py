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
one is refused: its per-type nets do not carry over to another type map. The pretrained model
is a frozen graph (ours or DeePMD-kit's) or a checkpoint prefix of ours.

New types (beyond DeePMD-kit): a user type map naming types the pretrained model lacks appends
them to its type map, for DPA-1 models (one sel block for every type). Each new type gets
- its row of the type embedding net's first matrix from the script's seed, as a new model
  initialises it (the one-hot input of an old type has a zero there, so the old types'
  embeddings are unchanged; with use_econf_tebd the net has no per-type weights);
- its rows of the descriptor statistics (davg, dstd) from the training data, as a new model
  computes them;
- its energy bias from the least-squares re-fit of step 3, where it is always included.
Before training, the model predicts for structures of the old types what the pretrained model
predicted (energies up to the re-fitted bias of the user's old types). Refused: a type
embedding net whose first layer would change its residual rule (DeePMD-kit's embedding nets
add the input when the first width equals the number of types, or twice it).
"""
from __future__ import annotations

import numpy as np

from ..config.errors import ConfigError, Problem
from ..data.errors import DataError
from ..infer.graph_file import ModelFileError, read_graph_def
from ..infer.weight_names import graph_constants, graph_script, is_compressed
from ..model.network import resnet_rules
from ..store.restore import CheckpointError, read_training_attributes, tables_of_checkpoint


def is_graph(path: str) -> bool:
    """Whether the pretrained model `path` is a frozen graph (else a checkpoint prefix)."""
    return str(path).endswith(".pb")


class Pretrained:
    """The pretrained model at `path` (a frozen graph or a checkpoint prefix), read once:
    `script`, its training script; `constants()`, {DeePMD-kit name: array} of every weight and
    statistic. ModelFileError (CheckpointError) when it has no script or is compressed."""

    def __init__(self, path: str):
        self.path = path
        self._constants = None
        if not is_graph(path):
            if tables_of_checkpoint(path) is not None:
                raise CheckpointError(f"{path}: a model trained from a compressed graph cannot "
                                      "be fine-tuned; fine-tune the graph it was compressed "
                                      "from")
            self.script = read_training_attributes(path)[0]
            return
        self._constants = graph_constants(read_graph_def(path))
        if is_compressed(self._constants):
            raise ModelFileError(f"{path}: a compressed model cannot be fine-tuned; fine-tune "
                                 "the graph it was compressed from")
        try:
            script = graph_script(self._constants)
        except ValueError:
            raise ModelFileError(f"{path}: train_attr/training_script is not JSON") from None
        if script is None:
            raise ModelFileError(f"{path}: the graph has no training script "
                                 "(train_attr/training_script), which fine-tuning needs (graphs "
                                 "of DeePMD-kit 2.1.5 and later, and of this package, have one)")
        self.script = script

    def constants(self) -> dict:
        """Every weight and statistic: the graph's constants, or a checkpoint's model (built
        from its script) restored and read out."""
        if self._constants is None:
            from ..config import build_config
            from ..model import EnergyModel
            from ..store.restore import restore_model

            model = EnergyModel(build_config(self.script).model)
            model.build()
            restore_model(model, self.path, strict=True)
            self._constants = {name: var.numpy()
                               for name, var in model.graph_variables().items()}
        return self._constants


def check_new_types(config, old: int, source: str) -> None:
    """ConfigError when the type embedding net's first layer combines with its one-hot input
    differently for `old` types than for the model's (train/finetune.py: new types)."""
    tebd = config.model.type_embedding
    if tebd is None or tebd.use_econf_tebd or old == config.model.ntypes:
        return
    words = {None: "h", "skip": "x + h", "concat": "concat(x, x) + h"}
    rules = [words[resnet_rules("embedding", n, tebd.neuron[:1])[0]]
             for n in (old, config.model.ntypes)]
    if rules[0] != rules[1]:
        raise ConfigError(source, [Problem("model/type_embedding/neuron", (
            f"--finetune: new types take the type embedding net from {old} to "
            f"{config.model.ntypes} one-hot inputs, and its first width {tebd.neuron[0]} would "
            f"change that layer's output from {rules[0]} to {rules[1]} (DeePMD-kit's residual "
            "rule for a width equal to, or twice, the input's), changing the old types' "
            "embeddings; pretrain with another first width to add types"))])


def extended(constants: dict, variables: dict, old: int) -> dict:
    """`constants` with each per-type array of `old` rows (first axis) that the model holds
    for more types widened to the model's variable: the old rows from `constants`, the new
    rows the variable's own (its initial weights, or what the caller assigned)."""
    out = dict(constants)
    for name, var in variables.items():
        value = constants.get(name)
        shape = tuple(var.shape)
        if (value is None or np.ndim(value) == 0 or tuple(value.shape) == shape
                or value.shape[0] != old or tuple(value.shape[1:]) != shape[1:]):
            continue
        widened = var.numpy().astype(value.dtype)
        widened[:old] = value
        out[name] = widened
    return out


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
        raise DataError(f"{path}: types {unknown} are not in the pretrained type map {full}; "
                        "name them in model/type_map to add them as new types")
    return [full.index(n) for n in names]
