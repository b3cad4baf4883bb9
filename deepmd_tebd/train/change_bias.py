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

from ..data.batch import assemble_batch, load_set_arrays
from ..data.sampling import DataRequirement
from ..infer.change_bias import least_squares_change

log = logging.getLogger("deepmd_tebd")


def _batches(system, ntypes: int, nsample: int):
    """The first `nsample` frames of `system` with their energies, a batch per set
    (data/batch.py's assembler)."""
    left = nsample
    for set_dir in system.sets:
        arrays = load_set_arrays(system, set_dir, [DataRequirement("energy", 1, must=True)])
        batch = assemble_batch(system, system.natoms_vec(ntypes), arrays, slice(0, left),
                               ["energy"])
        yield batch
        left -= batch["coord"].shape[0]
        if left <= 0:
            return


def bias_change(model, systems, ntypes: int, nsample: int, columns=None
                ) -> tuple[np.ndarray, float]:
    """(delta [ntypes], rms per-atom energy error after the change) of the model's energy bias
    on the first `nsample` frames of each of `systems` (data.system.System objects); with
    `columns` (type indices), only those types' biases move (delta [len(columns)])."""
    counts, residuals = [], []
    for system in systems:
        for batch in _batches(system, ntypes, nsample):
            pred = model(batch["coord"], batch["type"], batch["natoms_vec"], batch["box"],
                         batch["default_mesh"])["energy"]
            n = batch["coord"].shape[0]
            counts.append(batch["real_natoms_vec"][:, 2:] if "real_natoms_vec" in batch
                          else np.tile(np.bincount(system.atype, minlength=ntypes), (n, 1)))
            residuals.append(batch["energy"] - np.asarray(pred).reshape(-1))
    counts, residuals = np.concatenate(counts).astype(np.float64), np.concatenate(residuals)
    if columns is not None:
        counts = counts[:, list(columns)]
    return least_squares_change(counts, residuals)


def change_bias_after_training(model, systems, type_map, nsample: int, columns=None) -> None:
    """Adds the least-squares bias change to the fitting's bias_atom_e (logged); `columns`:
    the types that change (default: all)."""
    ntypes = int(model.ntypes)
    columns = list(range(ntypes)) if columns is None else list(columns)
    delta, rmse = bias_change(model, systems, ntypes, nsample, columns)
    bias = model.fitting.bias_atom_e
    old = bias.numpy().copy()
    new = old.copy()
    new[columns] += delta
    bias.assign(new)
    log.info(f"RMSE of atomic energy after linear regression is: {rmse} eV/atom.")
    log.info(f"Change energy bias of {[type_map[c] for c in columns]} from {old[columns]} to "
             f"{new[columns]}.")
