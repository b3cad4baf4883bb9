"""`dp model-devi`: how much several frozen models disagree on the frames of some systems, the
selection criterion of active learning (DeePMD-kit 3.2's `deepmd/infer/model_devi.py`).

Per frame, over the M models (population standard deviation, ddof 0):
  force   eps_i = |std_k F_i^k| per atom; max, min and mean over the atoms;
          --relative L: eps_i / (|mean_k F_i^k| + L)
  virial  sigma_c = std_k (V_c^k / N) for the 9 components; max, min and |sigma| / 3;
          --relative_v L: sigma / (|mean_k V^k / N| + L)
  energy  devi_e = std_k (E^k / N)
With --real_error the standard deviation becomes the RMS difference to the labels (energy/N,
force, virial/N; missing labels are zeros) and the relative magnitudes are those of the labels.

The output is appended to the file, one block per system (found recursively): `# <system>`, the
column header, then one row per frame of all its sets (`%12d` step = frame index x frequency,
then `%19.6e`), with --atomic the per-atom force deviations appended in type.raw's atom order.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.system import DataError, System, find_systems
from .graph_file import ModelFileError

log = logging.getLogger("deepmd_tebd")

COLUMNS = [f"{kind}_devi_{q}" for q in "vf" for kind in ("max", "min", "avg")] + ["devi_e"]


def _spread(values: np.ndarray, real: np.ndarray | None) -> np.ndarray:
    """Per component over the models (axis 0): the standard deviation, or the RMS difference to
    `real` when given."""
    if real is None:
        return np.std(values, axis=0)
    return np.sqrt(np.mean(np.square(values - real), axis=0))


def deviation_table(energies: np.ndarray, forces: np.ndarray, virials: np.ndarray,
                    natoms: int, real: dict | None = None, relative: float | None = None,
                    relative_v: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 7 deviation columns [nf, 7] (COLUMNS) and the per-atom force deviations [nf, nat] of
    M models' energies [M, nf, 1], forces [M, nf, nat, 3] and virials [M, nf, 9]; `real` holds
    the labels (energy [nf, 1], force [nf, nat, 3], virial [nf, 9], not divided by natoms)."""
    e, v = energies / natoms, virials / natoms
    real_e = real_v = real_f = None
    if real is not None:
        real_e, real_f, real_v = real["energy"] / natoms, real["force"], real["virial"] / natoms
    f_devi = np.linalg.norm(_spread(forces, real_f), axis=-1)
    if relative is not None:
        ref = np.mean(forces, axis=0) if real_f is None else real_f
        f_devi = f_devi / (np.linalg.norm(ref, axis=-1) + relative)
    v_devi = _spread(v, real_v)
    if relative_v is not None:
        ref = np.mean(v, axis=0) if real_v is None else real_v
        v_devi = v_devi / (np.linalg.norm(ref, axis=-1, keepdims=True) + relative_v)
    e_devi = _spread(e, real_e)[:, 0]
    table = np.stack([v_devi.max(-1), v_devi.min(-1), np.linalg.norm(v_devi, axis=-1) / 3,
                      f_devi.max(-1), f_devi.min(-1), f_devi.mean(-1), e_devi], axis=1)
    return table, f_devi


def check_models(models: Sequence) -> list[str]:
    """The type map the models share; ModelFileError when their type maps or cutoffs differ."""
    first = models[0]
    for other in models[1:]:
        if other.get_type_map() != first.get_type_map():
            raise ModelFileError(f"the models do not have the same type map: {first.model_file} "
                                 f"has {first.get_type_map()}, {other.model_file} has "
                                 f"{other.get_type_map()}")
        if other.get_rcut() != first.get_rcut():
            raise ModelFileError(f"the models do not have the same cutoff: {first.model_file} "
                                 f"has rcut {first.get_rcut()}, {other.model_file} has rcut "
                                 f"{other.get_rcut()}")
    return first.get_type_map()


def _evaluate(models, sys_: System, set_dir: Path, real_error: bool):
    """Every model's (energy, force, virial) on all frames of one set, and the labels."""
    data = sys_.load_set(set_dir)
    nf = data["coord"].shape[0]
    cells = data["box"] if sys_.pbc else None
    extra = {}
    dim_f, dim_a = models[0].get_dim_fparam(), models[0].get_dim_aparam()
    if dim_f:
        extra["fparam"] = sys_.load_array(set_dir, "fparam", dim_f, nframes=nf)
    if dim_a:
        extra["aparam"] = sys_.load_array(set_dir, "aparam", dim_a, atomic=True, nframes=nf)
    types = data.get("type", sys_.atype)  # the mixed-type format: each frame's own types
    outputs = [m.eval(data["coord"], cells, types, **extra) for m in models]
    real = None
    if real_error:
        real, _ = sys_.load_labels_or_zeros(set_dir, ("energy", "force", "virial"), nf)
        real["force"] = real["force"].reshape(nf, sys_.natoms, 3)
    return [np.array([out[i] for out in outputs]) for i in range(3)], real


def system_deviation(models, path: Path, type_map, frequency: int = 1,
                     real_error: bool = False, atomic: bool = False,
                     relative: float | None = None, relative_v: float | None = None) -> np.ndarray:
    """The rows of one system's block: step, the 7 columns and, `atomic`, one per atom."""
    sys_ = System(path, type_map=type_map or None)
    if sys_.mixed_type and not all(getattr(m, "mixed_types", False) for m in models):
        raise DataError(f"{path} is in the mixed-type format (set.*/real_atom_types.npy: every "
                        "frame its own atom types); only se_atten and se_atten_v2 models "
                        "evaluate it, and not every model given is one")
    rows = []
    for set_dir in sys_.sets:
        (energies, forces, virials), real = _evaluate(models, sys_, set_dir, real_error)
        table, per_atom = deviation_table(energies, forces, virials, sys_.natoms, real,
                                          relative, relative_v)
        if atomic:
            in_file_order = np.empty_like(per_atom)
            in_file_order[:, sys_.idx_map] = per_atom  # the loaded atoms are sorted by type
            table = np.concatenate([table, in_file_order], axis=1)
        rows.append(table)
    table = np.concatenate(rows, axis=0)
    steps = np.arange(table.shape[0], dtype=np.float64) * frequency
    return np.concatenate([steps[:, None], table], axis=1)


def write_block(path: str | Path, system: Path, rows: np.ndarray, atomic: bool) -> None:
    """Appends one system's block to the output file, in DeePMD-kit's layout."""
    header = f"{system}\n{'step':10s}" + "".join(f"{name:19s}" for name in COLUMNS)
    if atomic:
        header += f"{'atm_devi_f(N)':19s}"
    with open(path, "ab") as out:
        np.savetxt(out, rows, fmt=["%12d"] + ["%19.6e"] * (rows.shape[1] - 1), delimiter="",
                   header=header)


def make_model_devi(model_files: Sequence[str], system: str, output: str, frequency: int = 1,
                    real_error: bool = False, atomic: bool = False,
                    relative: float | None = None,
                    relative_v: float | None = None) -> list[np.ndarray]:
    """Writes the model deviation of `model_files` on the systems under `system` to `output`
    (appended) and returns each system's rows."""
    from .deep_pot import DeepPot

    models = [DeepPot(f) for f in model_files]
    try:
        type_map = check_models(models)
        blocks = []
        for path in find_systems(system):
            rows = system_deviation(models, path, type_map, frequency, real_error, atomic,
                                    relative, relative_v)
            write_block(output, path, rows, atomic)
            log.info(f"{path}: {rows.shape[0]} frames, max_devi_f up to {rows[:, 4].max():e}")
            blocks.append(rows)
        return blocks
    finally:
        for model in models:
            model.close()
