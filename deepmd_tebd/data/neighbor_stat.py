"""Neighbour statistics of training data and the automatic ``sel`` (DeePMD-kit's
deepmd/utils/neighbor_stat.py: NeighborStat.get_stat and deepmd/entrypoints/train.py:
update_one_sel).

``neighbor_stat`` runs the TebdNeighborStat op over every frame of every set of every system and
reduces the per-frame results the way DeePMD-kit v2.2.5 does:

* ``max_nbor_size[t]`` is the largest number of type-t neighbours (distance < rcut, periodic
  images included) around any atom of any frame;
* ``min_nbor_dist`` is the shortest distance within rcut over all frames, never more than 100
  (DeePMD-kit's starting value); a frame in which no two atoms lie within rcut contributes rcut
  (with a warning);
* two atoms at distance 0 raise :class:`OverlappingAtomsError`.

TensorFlow is imported only when the statistics are computed.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence

import numpy as np

from .batch import default_mesh, frame_chunks
from .system import DataError, System, count_types, load_systems

__all__ = ["CutoffTooLargeError", "OverlappingAtomsError", "neighbor_stat", "auto_sel",
           "parse_auto_sel"]

log = logging.getLogger(__name__)

# DeePMD-kit's search for the shortest distance starts from this value (Angstrom).
_MIN_DIST_START = 100.0
# Frames are sent to the op in batches of about this many atoms.
_BATCH_ATOMS = 1 << 16
_DEFAULT_SEL_FACTOR = 1.1
# The op's message for overlapping atoms (op/kernels/src/neighbor_stat.cc, op/tf/neighbor_stat.cc).
_OVERLAP = re.compile(
    r"frame (\d+): atoms (\d+) and (\d+) overlap \(distance 0( to a periodic image)?\)")


class OverlappingAtomsError(DataError, RuntimeError):
    """Two atoms of a frame at distance 0 (DeePMD-kit raises RuntimeError)."""


class CutoffTooLargeError(DataError):
    """A cutoff that needs more periodic images of a box than can be indexed: the fault is the
    cutoff's, which the caller names (a script's key path or an option)."""


def neighbor_stat(systems, rcut: float, type_map: Sequence[str] | None,
                  one_type: bool = False) -> tuple[float, np.ndarray]:
    """``(min_nbor_dist, max_nbor_size)`` of the systems named by ``systems``.

    systems: a root directory (searched recursively) or a list of system directories, as in
    ``training.training_data.systems``. type_map: the model's type names; the systems' types are
    mapped to it by name; None or empty: the systems' indices as they are, as many types as the
    data have (DeePMD-kit's deepmd/utils/update_sel.py: UpdateSel.get_nbor_stat). one_type: count every atom as type 0, so max_nbor_size has one entry.
    Logs the two "training data with ..." lines of DeePMD-kit.
    """
    import tensorflow as tf

    from ..op import op_module

    loaded = load_systems(systems, type_map)
    ntypes = 1 if one_type else len(type_map) if type_map else count_types(loaded)
    min_dist = _MIN_DIST_START
    max_size = np.zeros(ntypes, dtype=np.int32)
    for system in loaded:
        natoms = system.natoms
        # the op reads only nloc, nall and the number of types from natoms_vec
        natoms_vec = np.array([natoms, natoms] + [0] * ntypes, dtype=np.int32)
        mesh = default_mesh(system, mixed_type=False)
        for set_dir in system.sets:
            data = system.load_set(set_dir)
            nframes = data["coord"].shape[0]
            # each frame's types (mixed-type format: virtual atoms -1, which are not counted)
            atype = data.get("type", np.broadcast_to(system.atype, (nframes, natoms)))
            if one_type:
                atype = np.where(atype >= 0, 0, -1)
            isolated = False
            for part in frame_chunks(nframes, natoms, _BATCH_ATOMS):
                start, stop = part.start, part.stop
                try:
                    sizes, dists = op_module.tebd_neighbor_stat(
                        tf.constant(data["coord"][start:stop], tf.float64),
                        tf.constant(atype[start:stop], tf.int32),
                        tf.constant(natoms_vec, tf.int32),
                        tf.constant(data["box"][start:stop], tf.float64),
                        tf.constant(mesh, tf.int32),
                        rcut=float(rcut),
                    )
                except tf.errors.InvalidArgumentError as err:
                    raise _data_error(err.message, system, set_dir, start) from None
                max_size = np.maximum(max_size, sizes.numpy().max(axis=0))
                dists = dists.numpy()
                if np.isinf(dists).any():
                    isolated = True
                    dists = np.where(np.isinf(dists), float(rcut), dists)
                min_dist = min(min_dist, float(dists.min()))
            if isolated:
                log.warning("Atoms with no neighbors found in %s. Please make sure it's what you "
                            "expected.", set_dir)
    log.info("training data with min nbor dist: %s", min_dist)
    log.info("training data with max nbor size: %s", max_size)
    return min_dist, max_size


def _data_error(message: str, system: System, set_dir, start: int) -> DataError:
    """The op's error about frames start.. of set_dir, with atoms named as in type.raw."""
    found = _OVERLAP.search(message)
    if found is None:  # the kernel's own words, without TensorFlow's function and op names
        message = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", message)
        kind = CutoffTooLargeError if "periodic images" in message else DataError
        return kind(f"{set_dir}: {message.strip()}")
    frame, a, b = (int(g) for g in found.groups()[:3])
    a, b = sorted((int(system.idx_map[a]), int(system.idx_map[b])))
    image = " (one of them through a periodic image)" if found.group(4) else ""
    return OverlappingAtomsError(
        f"Some atoms are overlapping in {set_dir}: in frame {start + frame}, atoms {a} and {b} "
        f"(0-based lines of type.raw) are at distance 0{image}. Please check your training data "
        "to remove duplicated atoms.")


def parse_auto_sel(value) -> float:
    """The factor of an automatic ``sel``: "auto" -> 1.1, "auto:FACTOR" -> FACTOR (> 0)."""
    if isinstance(value, str):
        if value == "auto":
            return _DEFAULT_SEL_FACTOR
        if value.startswith("auto:"):
            try:
                factor = float(value[len("auto:"):])
            except ValueError:
                factor = math.nan
            if math.isfinite(factor) and factor > 0:
                return factor
    raise ValueError(f'sel must be a list of integers, "auto" or "auto:FACTOR" with a positive '
                     f"number FACTOR (e.g. \"auto:1.2\"); got {value!r}")


def auto_sel(max_nbor_size, factor: float) -> list[int]:
    """sel[t] = 4 * ((int(m_t * factor) + 3) // 4): scaled, truncated, rounded up to 4k."""
    return [4 * ((int(int(m) * factor) + 3) // 4) for m in max_nbor_size]
