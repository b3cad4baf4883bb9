"""`dp change-bias`: a frozen model's per-type energy bias (`fitting_attr/t_bias_atom_e`) changed
and written into a copy of its graph, every other node as it was.

Modes (DeePMD-kit 3.2's deepmd/tf/fit/ener.py: change_energy_bias_lower):
- change: the model (DeepPot) predicts the energies of the first N frames of each system (all
  its sets in order; N = 0: every frame); the bias moves by the least-squares solution of
  counts @ delta = E_label - E_model, counts[frame, type] the frame's atoms of each type;
- set: the biases of the types some frame holds become the least-squares solution of
  counts @ bias = E_label (DeePMD-kit fits the types of the first system's type_map.raw, so a
  type listed there that no frame holds gets the bias 0; here it keeps its own);
- -b v1 v2 ...: the bias becomes the given values, one per type of the model's type map.
Types no frame holds keep their bias (their column of counts is zero: the least-squares
solution of least norm leaves them). DeePMD-kit draws the frames from a shuffled copy of each
system; here they are the first frames in stored order, the same frames where N covers them all.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..data.batch import real_natoms_vec
from ..data.errors import DataError
from ..data.system import System
from .graph_file import ModelFileError

log = logging.getLogger("deepmd_tebd")

BIAS_NODE = "fitting_attr/t_bias_atom_e"


def bias_node(graph_def, path):
    """The Const node holding the energy bias; ModelFileError when the graph has none."""
    for node in graph_def.node:
        if node.name == BIAS_NODE and node.op == "Const":
            return node
    raise ModelFileError(f"{path}: the graph has no constant {BIAS_NODE}, the energy bias that "
                         "change-bias changes")


def graph_bias(graph_def, path) -> np.ndarray:
    """The energy bias constant of the graph (one value per type, its own dtype)."""
    return tf.make_ndarray(bias_node(graph_def, path).attr["value"].tensor)


def graph_with_bias(graph_def, bias: np.ndarray, path):
    """A copy of `graph_def` whose energy bias constant holds `bias` (its dtype and shape)."""
    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    node = bias_node(copy, path)
    old = graph_bias(copy, path)
    if np.asarray(bias).size != old.size:
        raise DataError(f"{path}: {old.size} bias values are needed (one per type), got "
                        f"{np.asarray(bias).size}")
    node.attr["value"].tensor.CopyFrom(
        tf.make_tensor_proto(np.asarray(bias, dtype=old.dtype).reshape(old.shape)))
    return copy


def counts_and_energies(dp, systems, nframes: int):
    """(counts [frames, ntypes], label energies [frames], model energies [frames]) of the first
    `nframes` frames (0: all) of each system, its types mapped by name onto the model's."""
    type_map = dp.get_type_map()
    ntypes = dp.get_ntypes()
    counts, labels, predicted = [], [], []
    for path in systems:
        system = System(path, type_map)
        frames = _frames(system)
        n = frames["coord"].shape[0] if nframes <= 0 else min(nframes, frames["coord"].shape[0])
        types = frames["type"][:n] if system.mixed_type else np.tile(system.atype, (n, 1))
        counts.append(real_natoms_vec(types, ntypes)[:, 2:])
        labels.append(frames["energy"][:n].reshape(-1))
        cells = frames["box"][:n] if system.pbc else None
        energy = dp.eval(frames["coord"][:n].reshape(n, system.natoms, 3), cells,
                         types if system.mixed_type else system.atype)[0]
        predicted.append(np.asarray(energy).reshape(-1))
    return (np.concatenate(counts).astype(np.float64), np.concatenate(labels),
            np.concatenate(predicted))


def _frames(system: System) -> dict:
    """Every frame of the system, its sets in order: coord, box, energy (and mixed: type)."""
    parts = []
    for set_dir in system.sets:
        data = system.load_set(set_dir)
        labels, found = system.load_labels_or_zeros(set_dir, ("energy",),
                                                    data["coord"].shape[0])
        if not found["energy"]:
            raise DataError(f"{set_dir / 'energy.npy'} is missing: change-bias fits energies")
        parts.append({**data, **labels})
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def least_squares_change(counts: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, float]:
    """(delta, rms per-atom residual after it): the least-squares solution of counts @ delta =
    residual (of least norm: a type no frame holds gets 0)."""
    delta = np.linalg.lstsq(counts, residual, rcond=None)[0]
    after = (residual - counts @ delta) / counts.sum(axis=1)
    return delta, float(np.sqrt(np.mean(after ** 2)))


def new_bias(old: np.ndarray, counts: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
             mode: str) -> np.ndarray:
    """The bias after `mode` ("change" or "set"; module text)."""
    if mode == "change":
        delta, rmse = least_squares_change(counts, labels - predicted)
        log.info(f"RMSE of atomic energy after linear regression is: {rmse} eV/atom.")
        return old + delta
    present = counts.any(axis=0)
    bias = old.copy()
    bias[present] = np.linalg.lstsq(counts[:, present], labels, rcond=None)[0]
    return bias


def changed_model(model: str, systems, mode: str = "change", bias_value=None,
                  numb_batch: int = 0, scratch: str | None = None):
    """(graph_def with the new bias, type map, old bias, new bias, checkpoint prefix or None) of
    `model`: a frozen graph, or a checkpoint prefix or folder, whose newest checkpoint is frozen
    first (into a temporary folder under `scratch`); `systems` the data of modes change and
    set, unused with `bias_value`."""
    from . import DeepPot
    from .frozen import freeze
    from .graph_file import read_graph_def

    prefix = None
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        graph = model
        if not model.endswith(".pb"):
            from ..store.restore import checkpoint_prefix, require_checkpoint

            folder = model if Path(model).is_dir() else str(Path(model).parent)
            prefix = checkpoint_prefix(folder)
            require_checkpoint(prefix, "change-bias")
            graph = os.path.join(tmp, "model.pb")
            freeze(folder, graph)
        graph_def = read_graph_def(graph)
        old = np.asarray(graph_bias(graph_def, model), dtype=np.float64).reshape(-1)
        dp = DeepPot(graph)
        type_map = dp.get_type_map()
        if bias_value is not None:
            bias = np.asarray(bias_value, dtype=np.float64)
        else:
            log.info(f"Changing bias for model with type_map: {type_map}")
            bias = new_bias(old, *counts_and_energies(dp, systems, numb_batch), mode)
        dp.close()
    return graph_with_bias(graph_def, bias, model), type_map, old, bias, prefix
