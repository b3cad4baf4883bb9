"""The keys of a training checkpoint: the objects the trainer gives tf.train.Checkpoint, and the
variables inside them that `dp freeze`, --restart, --init-model and --init-frz-model read back.
They are an interface between runs (a checkpoint is read by later versions): written once, here.

Imports nothing, so any stage can use it without TensorFlow.
"""
from __future__ import annotations

CKPT_MODEL = "model"  # the EnergyModel: weights and statistics
CKPT_OPTIMIZER = "optimizer"
CKPT_STEP = "step"
CKPT_DATA_STATE = "data_state"  # the data sampling state, JSON
CKPT_ATTRS = "attrs"  # store/restore.py: TrainingAttributes
CKPT_LOSS_SCALE = "loss_scale"  # mixed precision: train/loss_scale.py
CKPT_TABLES = "tables"  # a model trained from a compressed graph: store/restore.py
CKPT_WHOLE_VALIDATION = "whole_validation"  # train/best_model.py: ValidationTracker
# the variables of TrainingAttributes, named by its attributes (a tf.Module tracks them so)
CKPT_TRAINING_SCRIPT = "training_script"
CKPT_MIN_NBOR_DIST = "min_nbor_dist"
# the variables of CompressedTables: `<net>_table`, `<net>_info`
TABLE_SUFFIX = "_table"
TABLE_INFO_SUFFIX = "_info"

_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_variable_key(*path: str) -> str:
    """The checkpoint key of the variable reached by the object names `path`."""
    return "/".join(path) + _VALUE


def variable_path(key: str) -> str | None:
    """The object path of a variable's checkpoint key (the inverse of checkpoint_variable_key),
    None for a key that is not a variable value."""
    return key[:-len(_VALUE)] if key.endswith(_VALUE) else None


# the energy bias of the model's fitting (`fitting_attr/t_bias_atom_e` of a frozen model)
ENERGY_BIAS_KEY = checkpoint_variable_key(CKPT_MODEL, "fitting", "bias_atom_e")
