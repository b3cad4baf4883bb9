"""The names frozen graphs and checkpoints share: DeePMD-kit's node names (infer/node_names.py),
importable without TensorFlow, and the checkpoint keys `dp train` writes and `dp freeze` reads
(store/keys.py, importable without TensorFlow too)."""
import json
import subprocess
import sys

import pytest
import tensorflow as tf

from deepmd_tebd.infer import node_names as nn
from deepmd_tebd.store import keys as ck
from reference.deepmd_oracle import run_oracle_script

DEEPMD_NODE_NAMES = """
import json
from deepmd.tf.entrypoints.freeze import _make_node_names
print(json.dumps(_make_node_names("ener")))
"""
# DeePMD-kit 3.2 also keeps two attributes that only spin models have
SPIN_ONLY = {"spin_attr/virtual_len", "spin_attr/spin_norm"}


@pytest.mark.slow
def test_default_nodes_are_deepmd_kits_energy_model_nodes(tmp_path):
    theirs = json.loads(run_oracle_script(DEEPMD_NODE_NAMES, {}, tmp_path))
    assert [name for name in theirs if name in nn.DEFAULT_NODES] == list(nn.DEFAULT_NODES)
    assert set(theirs) - set(nn.DEFAULT_NODES) <= SPIN_ONLY


def test_node_names_and_checkpoint_keys_import_without_tensorflow():
    code = ("import sys\nimport deepmd_tebd.infer.node_names\nimport deepmd_tebd.store.keys\n"
            "assert 'tensorflow' not in sys.modules, 'the names imported TensorFlow'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_checkpoint_of_dp_train_has_the_keys_dp_freeze_reads(ours_run):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(ours_run)))
    keys = set(reader.get_variable_to_shape_map())
    for name in (ck.CKPT_TRAINING_SCRIPT, ck.CKPT_MIN_NBOR_DIST):
        assert ck.checkpoint_variable_key(ck.CKPT_ATTRS, name) in keys, name
    for name in (ck.CKPT_STEP, ck.CKPT_DATA_STATE):
        assert ck.checkpoint_variable_key(name) in keys, name
    for name in (ck.CKPT_MODEL, ck.CKPT_OPTIMIZER):
        assert any(key.startswith(name + "/") for key in keys), name
