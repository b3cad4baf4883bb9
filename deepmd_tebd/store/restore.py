"""Every way of restoring a model's weights and statistics, from a checkpoint or a frozen graph,
for training (train/model_start.py) and for `dp freeze` alike.

Checkpoints (written by train/trainer.py under the keys of store/keys.py):
* `TrainingAttributes`: the normalised training script and the minimal neighbour distance that
  `dp freeze` needs besides the weights (`train_attr/training_script`, `train_attr/min_nbor_dist`
  of a frozen model);
* `CompressedTables`: the tables of a model trained from a compressed graph (`dp train
  --init-frz-model compressed.pb`), kept so that `dp freeze`, --restart and --init-model
  rebuild the compressed descriptor, as DeePMD-kit keeps them as the imported graph's constants
  in its checkpoint's meta graph (deepmd/tf/train/trainer.py: _init_from_ckpt);
* `restore_checkpoint` (every object of a checkpoint: --restart's whole training state),
  `restore_model` (weights, statistics and tables: --init-model, `dp freeze`),
  `load_checkpoint_model` (`dp freeze`: the model its checkpoint's script builds).

Frozen graphs (`dp train --init-frz-model graph.pb`), as DeePMD-kit's
deepmd/tf/train/trainer.py (_init_from_frz_model) and the models' init_variables read them:
every variable from the graph constant of its DeePMD-kit name (`filter_type_i/...`,
`layer_k_type_i/...`, `final_layer...`, `type_embed_net/...`, `descrpt_attr/t_avg`, `t_std`,
`fitting_attr/t_bias_atom_e`), after checking the graph's `model_type`. A compressed graph
(`model_type = "compressed_model"`, ours or DeePMD-kit's `dp compress`) holds tables instead of
embedding nets: DeePMD-kit 3.2 then imports the graph's descriptor as it is
(deepmd/tf/model/model.py: build_descrpt with frz_model; EnerModel.init_variables reads the
fitting net only): the tables, their table_info and davg/dstd come from the graph, only the
fitting net trains, and `dp freeze` writes a compressed graph again whose training script is the
input script. Here the descriptor runs on the graph's tables (`tables_of_graph`; the descriptor
says whether it can, Descriptor.tabulation_refusal), its embedding nets are frozen and the
tables travel in the checkpoints (`CompressedTables`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..config.objects import build_config
from ..infer import node_names as nn
from ..infer.graph_file import ModelFileError, read_graph_def
from ..infer.weight_names import assign_graph_weights, graph_constants
from ..model.tabulation import NetTable
from . import keys

log = logging.getLogger("deepmd_tebd")

__all__ = ["CheckpointError", "CompressedTables", "TrainingAttributes", "assign_constants",
           "checkpoint_prefix", "compress_from_checkpoint", "has_checkpoint",
           "init_from_frozen_model", "load_checkpoint_model", "read_training_attributes",
           "reading_checkpoint", "require_checkpoint", "restore_checkpoint", "restore_model",
           "tables_of_checkpoint", "tables_of_graph", "tables_trackables"]


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names it."""


_MISMATCH = re.compile(r"incompatible tensor with shape (\(.*?\)) when attempting to restore "
                       r"variable with shape (\(.*?\)) and name (\S+?)(:\d+)?\.?$")


@contextlib.contextmanager
def reading_checkpoint(prefix):
    """CheckpointError naming `prefix` for what TensorFlow raises while reading it: a damaged or
    foreign file (a truncated .data, a garbage .index), or weights of another model."""
    try:
        yield
    except ValueError as err:
        text = str(err).strip()
        found = _MISMATCH.search(text.splitlines()[-1] if text else "")
        if found is None:
            raise CheckpointError(f"{prefix}: the checkpoint cannot be read: {text}") from None
        saved, wanted, name = found.group(1, 2, 3)
        raise CheckpointError(
            f"{prefix}: the checkpoint holds another model than the training script's: {name} "
            f"has shape {saved} there and {wanted} in the script's model (compare neuron, "
            "axis_neuron, sel, type_map and the descriptor type with the run that wrote it)"
        ) from None
    except AssertionError as err:  # objects of the model that the checkpoint lacks
        names = re.findall(r"path=([^,\s]+)", str(err))
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise CheckpointError(f"{prefix}: the checkpoint holds another model than the training "
                              f"script's: it lacks {shown or 'weights of the model'} (compare "
                              "the descriptor, type_embedding and fitting_net sections with the "
                              "run that wrote it)") from None
    except (tf.errors.OpError, IndexError, UnicodeDecodeError) as err:
        reason = getattr(err, "message", None) or str(err) or type(err).__name__
        raise CheckpointError(
            f"{prefix}: the checkpoint is damaged or is not a TensorFlow checkpoint "
            f"({reason.strip().splitlines()[0]}); restore it from a copy or use an earlier "
            "one (<save_ckpt>-<step>)") from None


# -- checkpoints ------------------------------------------------------------------------------

def has_checkpoint(prefix) -> bool:
    """Whether a checkpoint was saved under `prefix` (its `.index` file exists)."""
    return Path(f"{prefix}.index").is_file()


def require_checkpoint(prefix, option: str = "") -> None:
    """CheckpointError unless a checkpoint was saved under `prefix` (`option`: the command's
    option that named it, for the message)."""
    if not has_checkpoint(prefix):
        takes = f"{option} takes a checkpoint prefix such as model.ckpt; " if option else ""
        raise CheckpointError(f"{prefix}: no checkpoint there ({takes}{prefix}.index does not "
                              "exist)")

class TrainingAttributes(tf.Module):
    """The normalised training script (compact JSON) and the minimal neighbour distance, saved
    with every checkpoint (`train_attr/training_script`, `train_attr/min_nbor_dist` of a frozen
    model)."""

    def __init__(self, script: dict, min_nbor_dist: float | None = None):
        super().__init__(name="train_attr")
        # tf.Module tracks each variable under its attribute's name: the checkpoint keys
        setattr(self, keys.CKPT_TRAINING_SCRIPT, tf.Variable(
            json.dumps(script, separators=(",", ":")), dtype=tf.string, trainable=False,
            name="training_script"))
        setattr(self, keys.CKPT_MIN_NBOR_DIST, tf.Variable(
            -1.0 if min_nbor_dist is None else float(min_nbor_dist), dtype=tf.float64,
            trainable=False, name="min_nbor_dist"))

    @property
    def script_variable(self) -> tf.Variable:
        """The training script (compact JSON)."""
        return getattr(self, keys.CKPT_TRAINING_SCRIPT)

    @property
    def distance_variable(self) -> tf.Variable:
        """The minimal neighbour distance (-1: not computed)."""
        return getattr(self, keys.CKPT_MIN_NBOR_DIST)


class CompressedTables(tf.Module):
    """The descriptor's tables {net name: NetTable} as non-trainable variables `<net>_table`,
    `<net>_info`, tracked by the checkpoints."""

    def __init__(self, net_tables: dict):
        super().__init__(name=keys.CKPT_TABLES)
        for net, table in net_tables.items():
            setattr(self, net + keys.TABLE_SUFFIX, tf.Variable(table.table, trainable=False))
            setattr(self, net + keys.TABLE_INFO_SUFFIX,
                    tf.Variable(list(table.info), dtype=tf.float64, trainable=False))


def tables_trackables(model) -> dict:
    """{CKPT_TABLES: CompressedTables} of a model whose descriptor runs on tables, else {}."""
    net_tables = model.descriptor.net_tables
    return {} if not net_tables else {keys.CKPT_TABLES: CompressedTables(net_tables)}


def tables_of_checkpoint(prefix: str) -> dict | None:
    """{net: NetTable} saved in the checkpoint `prefix`, or None when it has none."""
    with reading_checkpoint(prefix):
        return _tables_of_reader(tf.train.load_checkpoint(str(prefix)))


def _tables_of_reader(reader) -> dict | None:
    start = keys.CKPT_TABLES + "/"
    nets = sorted(path[len(start):-len(keys.TABLE_SUFFIX)]
                  for path in map(keys.variable_path, reader.get_variable_to_shape_map())
                  if path is not None and path.startswith(start)
                  and path.endswith(keys.TABLE_SUFFIX))
    if not nets:
        return None

    def tensor(net, suffix):
        return reader.get_tensor(keys.checkpoint_variable_key(keys.CKPT_TABLES, net + suffix))

    return {net: NetTable(tensor(net, keys.TABLE_SUFFIX),
                          tuple(float(x) for x in tensor(net, keys.TABLE_INFO_SUFFIX)))
            for net in nets}


def compress_from_checkpoint(model, prefix: str) -> bool:
    """Runs `model`'s descriptor on the tables of the checkpoint `prefix` (embedding nets
    frozen), if it has any; whether it had."""
    if not has_checkpoint(prefix):
        return False
    tables = tables_of_checkpoint(prefix)
    if tables is None:
        return False
    model.descriptor.freeze_compressed(tables)
    return True


def restore_checkpoint(checkpoint: tf.train.Checkpoint, prefix: str,
                       expect_partial: bool = False) -> None:
    """Restores every object `checkpoint` tracks from the checkpoint `prefix` (a saved path, or
    the prefix whose links name the newest, train/checkpoint.py); unless expect_partial, every
    one must be in it (the whole training state of --restart)."""
    require_checkpoint(prefix)
    with reading_checkpoint(prefix):
        status = checkpoint.read(str(prefix))
        if expect_partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()


def restore_model(model, prefix: str, strict: bool = False) -> None:
    """`model`'s weights, statistics and tables from the checkpoint `prefix` (the model alone:
    no optimizer state, no step); strict: every weight of the model must be in it
    (CheckpointError otherwise)."""
    compress_from_checkpoint(model, prefix)
    with reading_checkpoint(prefix):
        status = tf.train.Checkpoint(**{keys.CKPT_MODEL: model}).read(str(prefix))
        status.expect_partial()
        if strict:
            status.assert_existing_objects_matched()


def checkpoint_prefix(checkpoint_folder: str | os.PathLike, best: bool = False) -> str:
    """The newest checkpoint of a `dp train` folder (its `checkpoint` file names it), or with
    `best` the best model's beside it (`<save_ckpt>-best`, train/best_model.py)."""
    folder = Path(checkpoint_folder)
    state = folder / "checkpoint"
    if not state.is_file():
        raise CheckpointError(f"{folder}: no checkpoint state file '{state}'; point -c to the "
                              "folder where `dp train` wrote its checkpoints")
    try:
        prefix = tf.train.latest_checkpoint(str(folder))
    except Exception as err:  # a state file that is not the text protobuf TensorFlow writes
        raise CheckpointError(f"{state}: not a checkpoint state file ({type(err).__name__}: "
                              f"{str(err).strip()[:200]})") from None
    if prefix is None or not has_checkpoint(prefix):
        raise CheckpointError(f"{state} names no checkpoint that exists in {folder}")
    if best:  # <save_ckpt>-<step> -> <save_ckpt>-best
        prefix = prefix.rsplit("-", 1)[0] + "-best"
        if not has_checkpoint(prefix):
            raise CheckpointError(f"{folder}: no best model {prefix}; it is written by training "
                                  "with training/whole_validation (save_best true)")
    return prefix


def read_training_attributes(prefix: str) -> tuple[dict, float | None]:
    """(training script, min_nbor_dist or None) of the checkpoint `prefix`."""
    with reading_checkpoint(prefix):
        reader = tf.train.load_checkpoint(prefix)
        present = reader.get_variable_to_shape_map()

        def value(name):
            key = keys.checkpoint_variable_key(keys.CKPT_ATTRS, name)
            if key not in present:
                raise CheckpointError(f"{prefix}: the checkpoint has no {name}; it was not "
                                      "written by deepmd_tebd's `dp train`")
            return reader.get_tensor(key)

        raw = value(keys.CKPT_TRAINING_SCRIPT)
        min_dist = float(value(keys.CKPT_MIN_NBOR_DIST))
        try:
            script = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{prefix}: the training script saved in the checkpoint is "
                                  f"not JSON ({err})") from None
    return script, (min_dist if min_dist >= 0 else None)


def load_checkpoint_model(checkpoint_folder: str | os.PathLike, best: bool = False):
    """(model with restored weights, training settings, min_nbor_dist or None) from the newest
    checkpoint of a `dp train` folder (`checkpoint_prefix`)."""
    from ..model import EnergyModel

    prefix = checkpoint_prefix(checkpoint_folder, best)
    script, min_dist = read_training_attributes(prefix)
    config = build_config(script)
    model = EnergyModel(config.model, mixed_precision=config.training.mixed_precision)
    model.build()
    restore_model(model, prefix, strict=True)
    log.info(f"restored the model from checkpoint {prefix}")
    return model, config, min_dist


# -- frozen graphs ----------------------------------------------------------------------------

TABULATE_OP = "TabulateFusionSeA"


def _natural_key(name: str) -> list:
    # `filter_type_10/TabulateFusionSeA_2` after `filter_type_2/TabulateFusionSeA`; the op
    # without a suffix is the first of its scope
    name = name if re.search(r"_\d+$", name) else name + "_0"
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _constant_input(by_name: dict, name: str):
    """The value of the Const behind `name`, through Identity and Cast nodes (None: not one)."""
    node = by_name.get(name.lstrip("^").split(":")[0])
    cast = None
    while node is not None and node.op in ("Identity", "Cast"):
        cast = cast or (node.attr["DstT"].type if node.op == "Cast" else None)
        node = by_name.get(node.input[0].split(":")[0])
    if node is None or node.op != "Const":
        return None
    value = tf.make_ndarray(node.attr["value"].tensor)
    return value if cast is None else value.astype(tf.as_dtype(cast).as_numpy_dtype)


def tables_of_graph(graph_def, net_names: list[str], path) -> dict:
    """{net name: NetTable} of a compressed se_e2_a graph: its TabulateFusionSeA ops in scope
    and suffix order (DeePMD-kit: `filter_type_i/TabulateFusionSeA_k`, centre type i outer,
    neighbour type inner; ours: one scope in the same order), matched to `net_names`, the
    descriptor's nets in that order (excluded pairs have neither); ModelFileError when they
    do not match."""
    by_name = {node.name: node for node in graph_def.node}
    ops = sorted((node for node in graph_def.node if node.op == TABULATE_OP),
                 key=lambda node: _natural_key(node.name))
    if len(ops) != len(net_names):
        raise ModelFileError(
            f"{path}: the compressed graph has {len(ops)} tabulated embedding nets "
            f"({TABULATE_OP} ops), the descriptor of the input script {len(net_names)}; "
            "the input script's model/descriptor must be the one the graph was trained with")
    tables = {}
    for name, node in zip(net_names, ops):
        table = _constant_input(by_name, node.input[0])
        info = _constant_input(by_name, node.input[1])
        if table is None or info is None or np.shape(info) != (6,):
            raise ModelFileError(f"{path}: the table or table_info of {node.name} is not a "
                                 "constant of the graph")
        tables[name] = NetTable(np.asarray(table), tuple(float(x) for x in info))
    return tables


def _init_compressed(model, constants: dict, graph_def, path) -> None:
    descriptor = model.descriptor
    reason = descriptor.tabulation_refusal(from_nets=False)
    if reason is not None:
        raise ModelFileError(f"{path}: a compressed graph, and the descriptor of the input "
                             f"script cannot run on its tables: {reason}")
    rcut = constants.get(nn.DESCRPT_ATTR_RCUT)
    if rcut is not None and not np.isclose(float(rcut), descriptor.rcut, rtol=0, atol=1e-12):
        raise ModelFileError(f"{path}: the graph's descriptor rcut {float(rcut)} differs from "
                             f"the input script's model/descriptor/rcut {descriptor.rcut}")
    tables = tables_of_graph(graph_def, descriptor.net_names(), path)
    width = 6 * descriptor.neuron[-1]
    for name, table in tables.items():
        if table.table.ndim != 2 or table.table.shape[1] != width:
            raise ModelFileError(
                f"{path}: the graph's table of {name} has {table.table.shape[-1] // 6} "
                f"output channels, the input script's model/descriptor/neuron ends with "
                f"{descriptor.neuron[-1]}")
    # the embedding nets are not in the graph: everything else is
    embedding = set()
    for mlp in descriptor.nets():
        embedding.update(mlp.graph_variables())
    variables = {k: v for k, v in model.graph_variables().items() if k not in embedding}
    assign_constants(variables, constants, path)
    descriptor.freeze_compressed(tables)
    log.info(f"initialize model from compressed frozen model {path}: the embedding nets are "
             "its tables (not trained), the fitting net trains")


def assign_constants(variables: dict, constants: dict, path) -> None:
    """Assigns each variable {DeePMD-kit name: variable} its constant; ModelFileError (naming
    `path`) for one of another shape or one missing."""
    try:
        missing = assign_graph_weights(variables, constants)
    except ValueError as err:
        raise ModelFileError(f"{path}: the graph does not fit the model of the input script: "
                             f"{err}") from None
    if missing:
        raise ModelFileError(f"{path}: the graph lacks the weights {missing} that the model of "
                             "the input script has (a graph of another architecture, or one "
                             "frozen without DeePMD-kit's variable names)")


def init_from_frozen_model(model, path) -> None:
    """Assigns `model` (built) the weights and statistics of the frozen model at `path` (a
    compressed one: also its tables, see the module text); ModelFileError (naming the file)
    when the graph does not fit the model."""
    graph_def = read_graph_def(path)
    constants = graph_constants(graph_def)
    model_type = constants.get(nn.MODEL_TYPE)
    if model_type is None:
        raise ModelFileError(f"{path}: the frozen model has no 'model_type' node, which "
                             "--init-frz-model needs (as in DeePMD-kit)")
    kind = model_type.item().decode()
    if kind == nn.COMPRESSED_MODEL:
        _init_compressed(model, constants, graph_def, path)
        return
    if kind != nn.ORIGINAL_MODEL:
        raise ModelFileError(f"{path}: unknown model_type {kind!r}")
    assign_constants(model.graph_variables(), constants, path)
    log.info(f"initialize model from frozen model {path}")
