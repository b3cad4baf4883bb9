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
           "merge_frames", "real_natoms_vec", "whole_set_batches"]


def default_mesh(system: System, mixed_type: bool | None = None) -> np.ndarray:
    """default_mesh of a system: int32 zeros(6), or zeros(0) without PBC; one longer (7, 1)
    for a system in the mixed-type format (unless mixed_type says otherwise); only its size
    matters (DeePMD-kit's deepmd/common.py: make_default_mesh)."""
    mixed = system.mixed_type if mixed_type is None else mixed_type
    return np.zeros(6 * system.pbc + mixed, dtype=np.int32)


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
    find_ flag. A mixed-type set's arrays hold each frame's types ("type"): the batch has them,
    and real_natoms_vec [nframes, 2+ntypes], each frame's natoms_vec (virtual atoms counted in
    the first two entries only); natoms_vec is type.raw's, as DeePMD-kit feeds it."""
    coord = arrays["coord"][frames]
    batch = {"coord": coord, "box": arrays["box"][frames],
             "natoms_vec": natoms_vec.copy(), "default_mesh": default_mesh(system)}
    if "type" in arrays:
        batch["type"] = arrays["type"][frames]
        batch["real_natoms_vec"] = real_natoms_vec(batch["type"], natoms_vec.size - 2)
    else:
        batch["type"] = np.tile(system.atype, (coord.shape[0], 1))
    for key in keys:
        batch[key] = arrays[key][frames]
        batch[f"find_{key}"] = arrays[f"find_{key}"]
    return batch


def real_natoms_vec(types: np.ndarray, ntypes: int) -> np.ndarray:
    """[nframes, 2+ntypes] int32: each frame's [natoms, natoms, count of each type] of the
    types [nframes, natoms] (-1, a virtual atom, counted in natoms only)."""
    types = np.asarray(types).reshape(len(types), -1)
    counts = np.stack([(types == t).sum(axis=1) for t in range(ntypes)], axis=1)
    natoms = np.full((types.shape[0], 2), types.shape[1])
    return np.concatenate([natoms, counts.reshape(types.shape[0], ntypes)], axis=1).astype(
        np.int32)


def merge_frames(frames: Sequence[dict], ntypes: int, atomic: set[str]) -> dict:
    """One batch of single-frame batches of systems of any size (DeePMD-kit's
    ``DeepmdDataSystem._merge_batch_data``, the ``"mixed:N"`` batch size): every frame padded
    to the largest natoms with virtual atoms (type -1, zero coordinates and labels); `atomic`:
    the per-atom keys. natoms_vec is [nmax, nmax, nmax, 0, ...]; real_natoms_vec gives each
    frame's own counts (a mixed-type frame's real types, where DeePMD-kit repeats type.raw's)."""
    nmax = max(f["type"].shape[1] for f in frames)
    merged = {"natoms_vec": np.array([nmax, nmax, nmax] + [0] * (ntypes - 1), np.int32),
              "real_natoms_vec": np.concatenate([f.get("real_natoms_vec", f["natoms_vec"][None])
                                                 for f in frames]).astype(np.int32),
              "default_mesh": frames[0]["default_mesh"],
              "type": np.full((len(frames), nmax), -1, np.int32)}
    for k, frame in enumerate(frames):
        merged["type"][k, :frame["type"].shape[1]] = frame["type"][0]
    for key, value in frames[0].items():
        if key in merged:
            continue
        if key.startswith("find_"):
            merged[key] = value
        elif key in atomic:
            width = value.shape[1] // frames[0]["type"].shape[1]
            merged[key] = np.zeros((len(frames), nmax * width), value.dtype)
            for k, frame in enumerate(frames):
                merged[key][k, :frame[key].shape[1]] = frame[key][0]
        else:
            merged[key] = np.concatenate([frame[key] for frame in frames])
    return merged


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
