"""The energy bias re-fitted to the training data after training (`training/
change_bias_after_training`, DeePMD-kit 3.x): each atom type's bias moves by the least-squares
solution of

    counts @ delta = E_label - E_model,

over the first `model/data_bias_nsample` frames of each training system (all its sets in order),
with counts[frame, type] the frame's number of atoms of each type, as DeePMD-kit's
change_energy_bias_lower does in its "change-by-statistic" mode. DeePMD-kit draws those frames
from a shuffled copy of the system; here they are the first frames in stored order, so that the
result does not depend on a random state.
"""
from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from ..data.batch import default_mesh

log = logging.getLogger("deepmd_tebd")


def _frames(system, nsample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coord [n, natoms*3], box [n, 9], energy [n]) of the first `nsample` frames."""
    coords, boxes, energies = [], [], []
    for set_dir in system.sets:
        data = system.load_set(set_dir)
        nframes = data["coord"].shape[0]
        energy = system.load_label(set_dir, "energy", 1, nframes=nframes)
        coords.append(data["coord"])
        boxes.append(data["box"])
        energies.append(energy.reshape(-1))
        if sum(c.shape[0] for c in coords) >= nsample:
            break
    return (np.concatenate(coords)[:nsample], np.concatenate(boxes)[:nsample],
            np.concatenate(energies)[:nsample])


def bias_change(model, systems, ntypes: int, nsample: int) -> tuple[np.ndarray, float]:
    """(delta [ntypes], rms per-atom energy error after the change) of the model's energy bias
    on the first `nsample` frames of each of `systems` (data.system.System objects)."""
    counts, residuals = [], []
    for system in systems:
        coord, box, energy = _frames(system, nsample)
        n = coord.shape[0]
        atype = np.tile(system.atype, (n, 1))
        pred = model(tf.constant(coord), tf.constant(atype),
                     tf.constant(system.natoms_vec(ntypes)), tf.constant(box),
                     tf.constant(default_mesh(system)))["energy"]
        counts.append(np.tile(np.bincount(system.atype, minlength=ntypes), (n, 1)))
        residuals.append(energy - np.asarray(pred).reshape(-1))
    counts, residuals = np.concatenate(counts).astype(np.float64), np.concatenate(residuals)
    delta = np.linalg.lstsq(counts, residuals, rcond=None)[0]
    after = (residuals - counts @ delta) / counts.sum(axis=1)
    return delta, float(np.sqrt(np.mean(after ** 2)))


def change_bias_after_training(model, systems, type_map, nsample: int) -> None:
    """Adds the least-squares bias change to the fitting's bias_atom_e (logged)."""
    ntypes = int(model.ntypes)
    delta, rmse = bias_change(model, systems, ntypes, nsample)
    bias = model.fitting.bias_atom_e
    old = bias.numpy().copy()
    bias.assign(old + delta)
    log.info(f"RMSE of atomic energy after linear regression is: {rmse} eV/atom.")
    log.info(f"Change energy bias of {list(type_map)} from {old} to {bias.numpy()}.")
