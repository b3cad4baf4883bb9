"""Checkpoints keep DeePMD-kit's names, the newest max_ckpt_keep, and restore by prefix."""
import tensorflow as tf

from deepmd_tebd.store.restore import CheckpointError
from deepmd_tebd.train.checkpoint import Checkpointer


def test_save_keeps_newest_and_links_prefix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    v = tf.Variable(0.0, dtype=tf.float64)
    ckpt = Checkpointer("model.ckpt", 2, v=v)
    for step in (100, 200, 300):
        v.assign(float(step))
        ckpt.save(step)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "model.ckpt-100.index" not in names
    assert {"model.ckpt-200.index", "model.ckpt-300.index", "checkpoint", "model.ckpt.index",
            "model.ckpt.data-00000-of-00001"} <= set(names)
    assert (tmp_path / "model.ckpt.index").resolve().name == "model.ckpt-300.index"
    w = tf.Variable(0.0, dtype=tf.float64)
    Checkpointer("model.ckpt", 2, v=w).restore("model.ckpt")
    assert float(w) == 300.0
    Checkpointer("model.ckpt", 2, v=w).restore("model.ckpt-200")
    assert float(w) == 200.0


def test_missing_checkpoint_is_reported(tmp_path):
    import pytest

    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(str(tmp_path / "model.ckpt"), 5, v=tf.Variable(1.0)).restore(
            str(tmp_path / "nothing"))
