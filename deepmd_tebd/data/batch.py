"""Batches in the training layout (see :mod:`.data_system`) put together from the arrays of one
set: the sampled batches of a DataSystem and the batches of every frame of a validation set
(``training/whole_validation``) are both made by :func:`assemble_batch`.

    arrays = load_set_arrays(system, set_dir, requirements)   # one set, frames in stored order
    batch = assemble_batch(system, natoms_vec, arrays, frames, keys)

Only NumPy is used here.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .sampling import DataRequirement, label_requirements
from .system import System

__all__ = ["assemble_batch", "default_mesh", "frame_chunks", "load_set_arrays",
           "whole_set_batches"]


def default_mesh(system: System) -> np.ndarray:
    """default_mesh of a system: int32 zeros(6), or zeros(0) without PBC."""
    return np.zeros(6 if system.pbc else 0, dtype=np.int32)


def load_set_arrays(system: System, set_dir: Path,
                    requirements: Sequence[DataRequirement]) -> dict[str, np.ndarray]:
    """coord, box and the arrays of `requirements` on all frames of one set, in stored order,
    each with its find_<key> flag (float64 1 or 0): a missing optional array is its default
    value, one value per frame is [nframes] (energy), the others [nframes, width]."""
    data = system.load_set(set_dir)
    nframes = data["coord"].shape[0]
    for req in requirements:
        values = system.load_label(set_dir, req.key, req.ndof, atomic=req.atomic,
                                   nframes=nframes, required=req.must)
        data[f"find_{req.key}"] = np.float64(values is not None)
        if values is None:
            width = req.ndof * (system.natoms if req.atomic else 1)
            values = np.full((nframes, width), req.default, dtype=np.float64)
        if req.repeat != 1:
            values = np.repeat(values, req.repeat, axis=1)
        if not req.atomic and req.ndof * req.repeat == 1:
            values = values.reshape(nframes)
        data[req.key] = values
    return data


def assemble_batch(system: System, natoms_vec: np.ndarray, arrays: dict, frames,
                   keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The batch of `frames` (an index array or a slice) of a set's arrays (load_set_arrays) of
    `system`: coord, box, type, natoms_vec, default_mesh, then each array of `keys` with its
    find_ flag."""
    coord = arrays["coord"][frames]
    batch = {"coord": coord, "box": arrays["box"][frames],
             "type": np.tile(system.atype, (coord.shape[0], 1)),
             "natoms_vec": natoms_vec.copy(), "default_mesh": default_mesh(system)}
    for key in keys:
        batch[key] = arrays[key][frames]
        batch[f"find_{key}"] = arrays[f"find_{key}"]
    return batch


def frame_chunks(nframes: int, natoms: int, batch_atoms: int) -> list[slice]:
    """Consecutive slices covering nframes frames, each of max(1, batch_atoms // natoms)."""
    step = max(1, batch_atoms // natoms)
    return [slice(start, min(nframes, start + step)) for start in range(0, nframes, step)]


def whole_set_batches(data, labels: Sequence[str], batch_atoms: int) -> list[dict]:
    """Every frame of every set of a DataSystem's systems once, in stored order, as batches of
    at most max(1, batch_atoms // natoms) frames with the labels `labels` (of the energy model;
    a missing one is zeros with find 0)."""
    requirements = label_requirements(labels)
    batches = []
    for system in data.systems:
        natoms_vec = system.natoms_vec(data.ntypes)
        for set_dir in system.sets:
            arrays = load_set_arrays(system, set_dir, requirements)
            for part in frame_chunks(arrays["coord"].shape[0], system.natoms, batch_atoms):
                batches.append(assemble_batch(system, natoms_vec, arrays, part, labels))
    return batches
