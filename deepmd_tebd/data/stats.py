"""Statistics of the training data that the model receives as constants.

    stat = collect_stat_batches(train_data, data_stat_nbatch)     # per system, its batches
    stats = compute_model_statistics(stat, settings.model, env_mat, stored)  # ModelStatistics
    sums = descriptor_sums(stat, env_mat, ntypes, nnei)           # per centre type
    davg, dstd = descriptor_stats_from_sums(sums, nnei, rcut, set_davg_zero)
    bias, std = energy_bias_and_std(stat, ntypes, rcond, atom_ener)
    fparam_avg, fparam_istd = param_stats_from_sums(param_sums(stat, "fparam", numb_fparam))

Everything is NumPy in float64. The descriptor's environment matrix with davg 0 and dstd 1 comes
from `env_mat(batch)` -> [nframes, natoms, 4*nnei], the descriptor's statistics input
(model/descriptor.py: Descriptor.stat_env_mat); this module calls no op itself and reads no
file: `stored` (store/stat_file.py: StatFile, DeePMD-kit's training/stat_file) gives back what
an earlier run wrote and keeps what is computed. Batches are dicts as
:class:`~deepmd_tebd.data.data_system.DataSystem` returns them; the functions taking batches
accept a flat list or a list of per-system lists.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

__all__ = [
    "COMPUTED",
    "ModelStatistics",
    "collect_stat_batches",
    "compute_model_statistics",
    "compute_aparam_stats",
    "compute_descriptor_stats",
    "compute_energy_bias",
    "compute_fparam_stats",
    "descriptor_stats_from_sums",
    "descriptor_sums",
    "energy_bias_and_std",
    "frame_energies_and_counts",
    "energy_bias_lstsq",
    "env_mat_sums",
    "observed_types",
    "param_stats_from_sums",
    "param_sums",
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


class _Computed:
    """No statistics file: every statistic is computed (the protocol StatFile follows)."""

    def descriptor_sums(self, compute):
        """Per centre type sums [ntypes, 5] (env_mat_sums' columns)."""
        return compute()

    def param_sums(self, name: str, dim: int, compute):
        """(count, sum, sum of squares) [dim, 3] of fparam or aparam."""
        return compute()

    def observed_types(self, compute):
        """The types present in the data (a statistics file records them)."""

    def energy_bias_and_std(self, compute):
        """The energy bias [ntypes] and the residuals' standard deviation [ntypes]."""
        return compute()


COMPUTED = _Computed()


def compute_model_statistics(stat_batches, settings, env_mat, stored=COMPUTED) -> ModelStatistics:
    """Every statistic of the model with `settings` (config.objects.ModelConfig, sel resolved)
    from per-system lists of batches (`collect_stat_batches`); env_mat(batch): the descriptor's
    environment matrix with davg 0 and dstd 1, [nframes, natoms, 4*nnei]. `stored` gives each
    statistic it holds instead of computing it, and keeps the others (in DeePMD-kit's order:
    descriptor, fparam, aparam, observed types, energy bias)."""
    desc, fit, ntypes = settings.descriptor, settings.fitting, settings.ntypes
    sums = stored.descriptor_sums(lambda: descriptor_sums(stat_batches, env_mat, ntypes,
                                                          desc.nnei))
    davg, dstd = descriptor_stats_from_sums(sums, desc.nnei, desc.rcut, desc.set_davg_zero)
    params = {}
    for name, dim in (("fparam", fit.numb_fparam), ("aparam", fit.numb_aparam)):
        if dim > 0:
            counted = stored.param_sums(name, dim, lambda: param_sums(stat_batches, name, dim))
            params[f"{name}_avg"], params[f"{name}_istd"] = param_stats_from_sums(
                counted, settings.data_stat_protect)
    stored.observed_types(lambda: observed_types(stat_batches, settings.type_map))
    bias, _ = stored.energy_bias_and_std(lambda: energy_bias_and_std(
        stat_batches, ntypes, fit.rcond, fit.atom_ener or None))
    return ModelStatistics(davg, dstd, np.asarray(bias, np.float64).reshape(ntypes), **params)


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


# what the statistics input of a descriptor reads of a batch: the frames' own arrays, then
# the arrays a system's batches share
_FRAME_KEYS = ("coord", "box", "type", "real_natoms_vec")
_SHARED_KEYS = ("natoms_vec", "default_mesh")
# the most neighbour slots (frames x atoms x nnei) of one joined call: its outputs (the matrix
# and ProdEnvMatA's derivative, 16 float64 per slot) stay within about 128 MiB
_JOIN_SLOTS = 1 << 20


def _nframes(batch: Mapping) -> int:
    return int(np.shape(batch["coord"])[0])


def _is_training_batch(batch: Mapping) -> bool:
    """Whether a batch holds a training batch's arrays (coord, box, type, natoms_vec,
    default_mesh); other statistics inputs (precomputed matrices) are never joined."""
    return all(key in batch for key in ("coord", "box", "type") + _SHARED_KEYS)


def _joinable(a: Mapping, b: Mapping) -> bool:
    """Whether two batches' frames can go through one environment-matrix call: both training
    batches with the same atoms per frame, natoms_vec and default_mesh."""
    return (_is_training_batch(a) and _is_training_batch(b)
            and np.shape(a["type"])[-1] == np.shape(b["type"])[-1]
            and all(np.array_equal(a[key], b[key]) for key in _SHARED_KEYS))


def _joined_runs(batches: Sequence[Mapping], nnei: int) -> list[list[Mapping]]:
    """The batches cut into runs of consecutive joinable ones of at most _JOIN_SLOTS slots
    together (a batch larger than that alone), order kept."""
    runs: list[list[Mapping]] = []
    slots = 0
    for batch in batches:
        size = (_nframes(batch) * np.shape(batch["type"])[-1] * nnei
                if _is_training_batch(batch) else 0)
        if runs and _joinable(runs[-1][0], batch) and slots + size <= _JOIN_SLOTS:
            runs[-1].append(batch)
            slots += size
        else:
            runs.append([batch])
            slots = size
    return runs


def _join(run: Sequence[Mapping]) -> Mapping:
    """One batch of the frames of a run of joinable batches (the keys the statistics input
    reads: each frame's coord, box, type and real_natoms_vec, the shared natoms_vec and
    default_mesh)."""
    if len(run) == 1:
        return run[0]
    joined = {key: run[0][key] for key in _SHARED_KEYS}
    for key in _FRAME_KEYS:
        if key in run[0]:
            joined[key] = np.concatenate([_per_frame(b, key) for b in run])
    return joined


def _per_frame(batch: Mapping, key: str) -> np.ndarray:
    """batch[key] as [nframes, width] (a type row shared by the frames repeated)."""
    value = np.asarray(batch[key])
    value = value.reshape(-1, value.shape[-1] if key == "type" else value.size // len(value))
    return np.broadcast_to(value, (_nframes(batch), value.shape[1]))


def descriptor_sums(batches, env_mat, ntypes: int, nnei: int) -> np.ndarray:
    """env_mat_sums [ntypes, 5] of every batch's raw environment matrix env_mat(batch)
    ([nframes, natoms, 4*nnei], davg 0, dstd 1), summed over the batches in order.

    Consecutive batches with the same atoms (a system's batches) go through env_mat as one
    batch of all their frames (see _join): the matrix of a frame does not depend on the other
    frames, and the sums are still taken batch by batch, so the result is the same to the bit
    as one call per batch."""
    total = np.zeros((ntypes, 5))
    for run in _joined_runs(_flat(batches), nnei):
        raw = np.asarray(env_mat(_join(run)))
        if raw.shape[-1] != 4 * nnei:
            raise ValueError(f"the environment matrix has {raw.shape[-1]} columns per atom, "
                             f"expected 4 x nnei = {4 * nnei}")
        if len(run) == 1:  # any statistics input, training batch or not
            total += env_mat_sums(raw, run[0]["type"], ntypes)
            continue
        start = 0
        for batch in run:  # training batches: their frames in order
            stop = start + _nframes(batch)
            total += env_mat_sums(raw[start:stop], batch["type"], ntypes)
            start = stop
    return total


def compute_descriptor_stats(batches, env_mat, ntypes: int, nnei: int, rcut: float,
                             set_davg_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """davg, dstd [ntypes, 4*nnei] of a descriptor over the given batches: the mean and
    standard deviation of the sums per centre type over all centres and slots."""
    return descriptor_stats_from_sums(descriptor_sums(batches, env_mat, ntypes, nnei), nnei,
                                      rcut, set_davg_zero)


def energy_bias_lstsq(energies: np.ndarray, counts: np.ndarray, rcond: float | None = None,
                      atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Per-type energy bias [ntypes] by least squares (DeePMD-kit's
    deepmd/utils/out_stat.py: compute_stats_from_redu).

    Solves ``counts @ x = energies`` (counts [nrows, ntypes] atoms of each type, energies
    [nrows]; a row per frame) with ``numpy.linalg.lstsq(rcond=rcond)``: the minimum-norm
    solution when underdetermined. ``atom_ener`` (entry t: the given energy of type t, or None):
    the given types' energies are subtracted from the energies and their columns zeroed before
    solving; their bias is the given value.
    """
    counts = np.array(counts, dtype=np.float64)
    ener = np.array(energies, dtype=np.float64).reshape(-1)
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


def frame_energies_and_counts(batches, ntypes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's energy [nframes] and atoms of each type [nframes, ntypes]
    (real_natoms_vec[2:] of a mixed-type batch, natoms_vec[2:] otherwise)."""
    energies, counts = [], []
    for batch in _flat(batches):
        ener = np.asarray(batch["energy"], np.float64).reshape(-1)
        vec = np.asarray(batch.get("real_natoms_vec", batch["natoms_vec"]), np.float64)
        vec = np.broadcast_to(vec.reshape(-1, vec.shape[-1]), (ener.size, vec.shape[-1]))[:, 2:]
        rows = np.zeros((ener.size, ntypes))
        rows[:, :min(ntypes, vec.shape[1])] = vec[:, :ntypes]
        energies.append(ener)
        counts.append(rows)
    return np.concatenate(energies), np.concatenate(counts)


def energy_bias_and_std(stat_batches, ntypes: int, rcond: float | None = None,
                        atom_ener: Sequence[float | None] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-type energy bias [ntypes] by least squares over every frame of the batches (as
    DeePMD-kit 3.x's TensorFlow backend: deepmd/dpmodel/utils/stat.py, compute_output_stats),
    and the standard deviation of the residual energies, the same for every type [ntypes]."""
    energies, counts = frame_energies_and_counts(stat_batches, ntypes)
    bias = energy_bias_lstsq(energies, counts, rcond, atom_ener)
    return bias, np.full(ntypes, np.std(energies - counts @ bias))


def compute_energy_bias(stat_batches, ntypes: int, rcond: float | None = None,
                        atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Per-type energy bias [ntypes]: see :func:`energy_bias_and_std`."""
    return energy_bias_and_std(stat_batches, ntypes, rcond, atom_ener)[0]


def observed_types(stat_batches, type_map) -> list[str]:
    """The type_map names of the types present in the batches, by atomic number (names that are
    not elements last, in type order), as DeePMD-kit records them."""
    from ..electron_configuration import ELEMENTS

    present = set()
    for batch in _flat(stat_batches):
        present.update(np.unique(np.asarray(batch["type"])).tolist())
    names = [type_map[t] for t in sorted(present) if 0 <= t < len(type_map)]
    order = {name: z for z, name in enumerate(ELEMENTS)}
    return sorted(names, key=lambda name: order.get(name, len(ELEMENTS)))


def param_sums(batches, name: str, dim: int) -> np.ndarray:
    """(count, sum, sum of squares) of each of the `dim` components of fparam or aparam over
    every frame (atom, for aparam) of the batches: [dim, 3]."""
    values = np.concatenate([np.asarray(b[name], np.float64).reshape(-1, dim)
                             for b in _flat(batches)])
    return np.column_stack([np.full(dim, float(values.shape[0])), values.sum(axis=0),
                            (values * values).sum(axis=0)])


def param_stats_from_sums(sums: np.ndarray, protection: float = 1e-2
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(avg, inverse std) [dim] from param_sums: std = sqrt(E[x^2] - E[x]^2), at least
    ``protection`` (DeePMD-kit's StatItem.compute_std)."""
    n, total, squares = np.asarray(sums, np.float64).T
    avg = total / n
    std = np.sqrt(np.maximum(squares / n - avg * avg, 0.0))
    return avg, 1.0 / np.where(np.abs(std) < protection, protection, std)


def compute_fparam_stats(batches, numb_fparam: int, protection: float = 1e-2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(avg, inverse std) [numb_fparam] of the frame parameters over all frames of the batches."""
    return param_stats_from_sums(param_sums(batches, "fparam", numb_fparam), protection)


def compute_aparam_stats(batches, numb_aparam: int, protection: float = 1e-2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(avg, inverse std) [numb_aparam] of the atomic parameters over all atoms of the batches."""
    return param_stats_from_sums(param_sums(batches, "aparam", numb_aparam), protection)
