"""Checkpoints with DeePMD-kit's names: `<save_ckpt>-<step>.index` / `.data-00000-of-00001` beside
a `checkpoint` state file, the newest `max_ckpt_keep` kept, and relative links `<save_ckpt>.index`
and `<save_ckpt>.data-00000-of-00001` to the newest, so that `--restart model.ckpt` and
`--init-model model.ckpt` find it. TensorFlow writes the data under temporary names and renames
them, and the links are replaced atomically: an interrupted save leaves the previous checkpoint
usable."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import tensorflow as tf

from ..store.restore import restore_checkpoint

log = logging.getLogger("deepmd_tebd")
SUFFIXES = (".index", ".data-00000-of-00001")


class Checkpointer:
    """Numbered checkpoints of the tracked objects under `prefix`, the newest max_keep kept."""

    def __init__(self, prefix: str, max_keep: int, **trackables):
        path = Path(prefix)
        self.prefix = path
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(path.parent if str(path.parent) else "."), max_to_keep=max_keep,
            checkpoint_name=path.name)

    def save(self, step: int) -> str:
        """Writes the checkpoint of `step` and points the prefix links at it."""
        saved = self.manager.save(checkpoint_number=step)
        for suffix in SUFFIXES:
            link = Path(str(self.prefix) + suffix)
            tmp = link.with_name(link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(os.path.basename(saved) + suffix)
            os.replace(tmp, link)
        log.info(f"saved checkpoint {self.prefix}")
        return saved

    def restore(self, prefix: str, expect_partial: bool = False) -> None:
        """Restores every tracked object from the checkpoint `prefix` (a saved path, or the
        prefix whose links name the newest): store/restore.py, restore_checkpoint."""
        restore_checkpoint(self.checkpoint, prefix, expect_partial)
