"""A copy of a training checkpoint with some of its tensors replaced (`dp change-bias` of a
checkpoint NAME writes `<folder>/NAME_updated/NAME` so, as DeePMD-kit does): every tensor of the
bundle, the object graph included, is written again under the new prefix, so that --restart,
--init-model and `dp freeze -c` read the copy as they read the original."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from .restore import CheckpointError, reading_checkpoint

log = logging.getLogger("deepmd_tebd")

__all__ = ["write_updated_checkpoint"]


def _save(prefix: str, tensors: dict) -> None:
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


def write_updated_checkpoint(prefix: str, replace: dict, folder: str | os.PathLike,
                             name: str) -> str:
    """Writes the checkpoint `prefix` with the tensors {key: value} of `replace` (keys that it
    holds, same shapes) as `folder`/`name` (the folder replaced as a whole, atomically: a new
    one is renamed into place), with a checkpoint state file naming it and the training
    folder's input.json when there is one; returns the new prefix."""
    with reading_checkpoint(prefix):
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        tensors = {key: reader.get_tensor(key) for key in dtypes}
    for key, value in replace.items():
        if key not in tensors or np.shape(value) != np.shape(tensors[key]):
            raise CheckpointError(f"{prefix}: no tensor {key} of shape "
                                  f"{np.shape(value)} to replace")
        tensors[key] = np.asarray(value, dtype=dtypes[key].as_numpy_dtype)
    folder = Path(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _save(str(tmp / name), tensors)
        (tmp / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n'
                                        f'all_model_checkpoint_paths: "{name}"\n')
        script = Path(prefix).parent / "input.json"
        if script.is_file():
            shutil.copy2(script, tmp / "input.json")
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(f"Saving updated checkpoint to {folder / name}")
    return str(folder / name)
