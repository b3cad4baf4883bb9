"""The tables of a model trained from a compressed graph (`dp train --init-frz-model
compressed.pb`), kept in its checkpoints so that `dp freeze`, --restart and --init-model rebuild
the compressed descriptor: DeePMD-kit keeps them as the imported graph's constants in its
checkpoint's meta graph (deepmd/tf/train/trainer.py: _init_from_ckpt reads `model_type` there).
Checkpoint keys: `tables/<net>_table`, `tables/<net>_info` (net: the descriptor's net attribute
name, `filter_type_i_j` or `filter_type_all_j`)."""
from __future__ import annotations

import tensorflow as tf

from ..infer.node_names import checkpoint_variable_key
from ..model.tabulation import NetTable

CKPT_TABLES = "tables"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class CompressedTables(tf.Module):
    """The descriptor's tables as non-trainable variables, tracked by the checkpoints."""

    def __init__(self, net_tables: dict):
        super().__init__(name=CKPT_TABLES)
        for net, table in net_tables.items():
            setattr(self, f"{net}_table", tf.Variable(table.table, trainable=False))
            setattr(self, f"{net}_info", tf.Variable(list(table.info), dtype=tf.float64,
                                                     trainable=False))


def tables_trackables(model) -> dict:
    """{CKPT_TABLES: CompressedTables} of a compressed model's descriptor, else {}."""
    net_tables = model.descriptor.net_tables
    return {} if not net_tables else {CKPT_TABLES: CompressedTables(net_tables)}


def tables_of_checkpoint(prefix: str) -> dict | None:
    """{net: NetTable} saved in the checkpoint `prefix`, or None when it has none."""
    reader = tf.train.load_checkpoint(str(prefix))
    keys = reader.get_variable_to_shape_map()
    start = CKPT_TABLES + "/"
    nets = sorted(key[len(start):-len("_table" + _SUFFIX)] for key in keys
                  if key.startswith(start) and key.endswith("_table" + _SUFFIX))
    if not nets:
        return None
    return {net: NetTable(reader.get_tensor(checkpoint_variable_key(CKPT_TABLES, f"{net}_table")),
                          tuple(float(x) for x in reader.get_tensor(
                              checkpoint_variable_key(CKPT_TABLES, f"{net}_info"))))
            for net in nets}


def compress_from_checkpoint(model, prefix: str) -> bool:
    """Compresses `model`'s descriptor (embedding nets frozen) with the tables of the checkpoint
    `prefix`, if it has any; whether it had."""
    tables = tables_of_checkpoint(prefix)
    if tables is None:
        return False
    model.descriptor.freeze_compressed(tables)
    return True
