"""Statistics of the training data that the model receives as constants.

    stat = collect_stat_batches(train_data, data_stat_nbatch)     # per system, its batches
    stats = compute_model_statistics(stat, settings.model, env_mat)   # ModelStatistics, all below
    davg, dstd = compute_descriptor_stats(stat, env_mat, ntypes, nnei, rcut, set_davg_zero)
    bias = compute_energy_bias(stat, ntypes, rcond, atom_ener)
    fparam_avg, fparam_istd = compute_fparam_stats(stat, numb_fparam, data_stat_protect)
    aparam_avg, aparam_istd = compute_aparam_stats(stat, numb_aparam, data_stat_protect)

Everything is NumPy in float64. The descriptor's environment matrix with davg 0 and dstd 1 comes
from `env_mat(batch)` -> [nframes, natoms, 4*nnei], the descriptor's statistics input
(model/descriptor.py: Descriptor.stat_env_mat); this module calls no op itself. Batches are
dicts as :class:`~deepmd_tebd.data.data_system.DataSystem` returns them; the functions taking
batches accept a flat list or a list of per-system lists.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

__all__ = [
    "ModelStatistics",
    "collect_stat_batches",
    "compute_model_statistics",
    "compute_aparam_stats",
    "compute_descriptor_stats",
    "compute_energy_bias",
    "compute_fparam_stats",
    "descriptor_stats_from_sums",
    "energy_bias_from_means",
    "env_mat_sums",
]

@dataclasses.dataclass(frozen=True)
class ModelStatistics:
    """What the model receives from the data: davg, dstd [ntypes, ndescrpt] (set_davg_zero
    applied), the energy bias [ntypes] (atom_ener values in it), and the fparam/aparam mean and
    inverse standard deviation (None without them)."""

    davg: np.ndarray
    dstd: np.ndarray
    bias_atom_e: np.ndarray
    fparam_avg: Optional[np.ndarray] = None
    fparam_istd: Optional[np.ndarray] = None
    aparam_avg: Optional[np.ndarray] = None
    aparam_istd: Optional[np.ndarray] = None


def compute_model_statistics(stat_batches, settings, env_mat) -> ModelStatistics:
    """Every statistic of the model with `settings` (config.objects.ModelConfig, sel resolved)
    from per-system lists of batches (`collect_stat_batches`); env_mat(batch): the descriptor's
    environment matrix with davg 0 and dstd 1, [nframes, natoms, 4*nnei]."""
    desc, fit = settings.descriptor, settings.fitting
    davg, dstd = compute_descriptor_stats(stat_batches, env_mat, settings.ntypes, desc.nnei,
                                          desc.rcut, desc.set_davg_zero)
    bias = compute_energy_bias(stat_batches, settings.ntypes, fit.rcond, fit.atom_ener or None)
    params = {}
    if fit.numb_fparam > 0:
        params["fparam_avg"], params["fparam_istd"] = compute_fparam_stats(
            stat_batches, fit.numb_fparam, settings.data_stat_protect)
    if fit.numb_aparam > 0:
        params["aparam_avg"], params["aparam_istd"] = compute_aparam_stats(
            stat_batches, fit.numb_aparam, settings.data_stat_protect)
    return ModelStatistics(davg, dstd, bias, **params)


# sums per centre type, in the columns of env_mat_sums' result
SR, SR2, SA, SA2, N = range(5)


def collect_stat_batches(data_system, nbatch: int) -> list[list[dict]]:
    """``nbatch`` batches of every system, system by system (``get_batch(sys_idx=k)``).

    The batches come from each system's own iterator with its own batch size; the data RNG is used
    only for the set shuffles these batches trigger (no system draw), as DeePMD-kit does before
    training. Returns one list of batches per system.
    """
    return [[data_system.get_batch(sys_idx=k) for _ in range(nbatch)]
            for k in range(data_system.nsystems)]


def _flat(batches) -> list[Mapping]:
    """A flat list of batches from a flat list or a list of per-system lists."""
    out = []
    for item in batches:
        if isinstance(item, Mapping):
            out.append(item)
        else:
            out.extend(_flat(item))
    return out


def env_mat_sums(raw: np.ndarray, atype: np.ndarray, ntypes: int) -> np.ndarray:
    """Per centre type t, sums over its centres and all their slots (empty ones included):

        sr = sum s,  sr2 = sum s^2,  sa = sum (c1+c2+c3)/3,  sa2 = sum (c1^2+c2^2+c3^2)/3,
        n = number of slots

    raw [nframes, natoms, 4*nnei] (rows s, c1, c2, c3), atype [nframes, natoms] or [natoms].
    Returns [ntypes, 5] with columns (sr, sr2, sa, sa2, n).
    """
    nframes, natoms = raw.shape[:2]
    rows = raw.reshape(nframes, natoms, -1, 4)
    atype = np.broadcast_to(np.asarray(atype).reshape(-1, natoms), (nframes, natoms))
    sums = np.zeros((ntypes, 5))
    for t in range(ntypes):
        dd = rows[atype == t]          # [centres of type t, nnei, 4]
        r, a = dd[..., 0], dd[..., 1:]
        sums[t] = (np.sum(r), np.sum(r * r), np.sum(a) / 3.0, np.sum(a * a) / 3.0, r.size)
    return sums


def _std(sum2: float, total: float, n: float, rcut: float) -> float:
    """sqrt(sum2/n - (sum/n)^2), at least 0.01; 1/rcut when there is nothing (n = 0)."""
    if n == 0:
        return 1.0 / rcut
    val = np.sqrt(max(sum2 / n - (total / n) ** 2, 0.0))
    return 0.01 if abs(val) < 0.01 else float(val)


def descriptor_stats_from_sums(sums: np.ndarray, nnei: int, rcut: float,
                               set_davg_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """davg, dstd [ntypes, 4*nnei] from the summed env_mat_sums (DeePMD-kit's
    deepmd/descriptor/se_a.py: DescrptSeA._compute_std and compute_input_stats).

    davg_t = [sr/(n + 1e-15), 0, 0, 0] and dstd_t = [sigma_r, sigma_a, sigma_a, sigma_a], tiled
    over the nnei slots; davg = 0 with set_davg_zero.
    """
    sums = np.asarray(sums, dtype=np.float64)
    ntypes = sums.shape[0]
    davg = np.zeros((ntypes, 4 * nnei))
    dstd = np.zeros((ntypes, 4 * nnei))
    for t in range(ntypes):
        sr, sr2, sa, sa2, n = sums[t]
        sigma_r = _std(sr2, sr, n, rcut)
        sigma_a = _std(sa2, sa, n, rcut)
        davg[t] = np.tile([sr / (n + 1e-15), 0.0, 0.0, 0.0], nnei)
        dstd[t] = np.tile([sigma_r, sigma_a, sigma_a, sigma_a], nnei)
    if set_davg_zero:
        davg[:] = 0.0
    return davg, dstd


def compute_descriptor_stats(batches, env_mat, ntypes: int, nnei: int, rcut: float,
                             set_davg_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """davg, dstd [ntypes, 4*nnei] of a descriptor over the given batches.

    Each batch's raw environment matrix env_mat(batch) ([nframes, natoms, 4*nnei], davg 0,
    dstd 1) is summed per centre type over all centres and slots; the sums over all batches
    give the mean and standard deviation.
    """
    total = np.zeros((ntypes, 5))
    for batch in _flat(batches):
        raw = np.asarray(env_mat(batch))
        if raw.shape[-1] != 4 * nnei:
            raise ValueError(f"the environment matrix has {raw.shape[-1]} columns per atom, "
                             f"expected 4 x nnei = {4 * nnei}")
        total += env_mat_sums(raw, batch["type"], ntypes)
    return descriptor_stats_from_sums(total, nnei, rcut, set_davg_zero)


def energy_bias_from_means(sys_ener: np.ndarray, sys_counts: np.ndarray, rcond: float | None = None,
                           atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Per-type energy bias [ntypes] by least squares (DeePMD-kit's
    deepmd/fit/ener.py: EnerFitting._compute_output_stats).

    Solves ``sys_counts @ x = sys_ener`` (sys_counts [nsys, ntypes] atoms of each type,
    sys_ener [nsys] mean energies) with ``numpy.linalg.lstsq(rcond=rcond)``: the minimum-norm
    solution when underdetermined. ``atom_ener`` (entry t: the given energy of type t, or None):
    the given types' energies are subtracted from sys_ener and their columns zeroed before
    solving; their bias is the given value.
    """
    counts = np.array(sys_counts, dtype=np.float64)
    ener = np.array(sys_ener, dtype=np.float64).reshape(-1)
    ntypes = counts.shape[1]
    assigned = {}
    for t, value in enumerate(atom_ener or []):
        if value is not None:
            if t >= ntypes:
                raise ValueError(f"atom_ener gives a value for type {t}, but there are only "
                                 f"{ntypes} types")
            assigned[t] = float(value)
    if assigned:
        idx = list(assigned)
        ener = ener - counts[:, idx] @ np.array([assigned[t] for t in idx])
        counts[:, idx] = 0.0
    bias = np.linalg.lstsq(counts, ener, rcond=rcond)[0]
    for t, value in assigned.items():
        bias[t] = value
    return bias


def compute_energy_bias(stat_batches, ntypes: int, rcond: float | None = None,
                        atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Per-type energy bias [ntypes] from per-system lists of batches.

    System s contributes the mean energy of all frames of its batches and its atom counts per
    type (natoms_vec[2:]); see :func:`energy_bias_from_means`.
    """
    sys_ener, sys_counts = [], []
    for system_batches in stat_batches:
        if isinstance(system_batches, Mapping):
            raise TypeError("compute_energy_bias needs one list of batches per system")
        energies = np.concatenate([np.asarray(b["energy"], np.float64).reshape(-1)
                                   for b in system_batches])
        sys_ener.append(np.mean(energies))
        counts = np.zeros(ntypes)
        vec = np.asarray(system_batches[0]["natoms_vec"])[2:]
        counts[:min(ntypes, vec.size)] = vec[:ntypes]
        sys_counts.append(counts)
    return energy_bias_from_means(np.array(sys_ener), np.array(sys_counts), rcond, atom_ener)


def _avg_inv_std(values: np.ndarray, protection: float, from_sums: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 1/std (population std, floored at ``protection``) of the rows of values; the std
    from sqrt(mean(x^2) - mean(x)^2) when ``from_sums`` (as DeePMD-kit does for aparam)."""
    avg = np.mean(values, axis=0)
    if from_sums:
        std = np.sqrt(np.maximum(np.sum(values * values, axis=0) / values.shape[0] - avg * avg,
                                 0.0))
    else:
        std = np.std(values, axis=0)
    std = np.where(std < protection, protection, std)
    return avg, 1.0 / std


def compute_fparam_stats(batches, numb_fparam: int, protection: float = 1e-2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(avg, inverse std) [numb_fparam] of the frame parameters over all frames of the batches."""
    values = np.concatenate([np.asarray(b["fparam"], np.float64).reshape(-1, numb_fparam)
                             for b in _flat(batches)])
    return _avg_inv_std(values, protection, from_sums=False)


def compute_aparam_stats(batches, numb_aparam: int, protection: float = 1e-2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(avg, inverse std) [numb_aparam] of the atomic parameters over all atoms of the batches."""
    values = np.concatenate([np.asarray(b["aparam"], np.float64).reshape(-1, numb_aparam)
                             for b in _flat(batches)])
    return _avg_inv_std(values, protection, from_sums=True)
