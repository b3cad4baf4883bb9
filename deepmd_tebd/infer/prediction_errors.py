"""The errors of a frozen model on labelled systems, as `dp test` reports them: DeePMD-kit's
summary lines and detail files (v2.2's `deepmd/entrypoints/test.py: test_ener`), and a parity plot
(parity_plot.py).

Per system (found recursively under -s, or listed in -f): the model's type map applied through
the system's type_map.raw, the last set (`<set_prefix>.*`, sorted), its first `-n` frames (0: all;
shuffled first with --shuffle-test, seeded by -r). Missing labels count as zeros. Errors: MAE =
mean |pred - data|, RMSE = sqrt(mean (pred - data)^2) over all components; "/Natoms" divides by
the number of atoms. Virial lines only for periodic systems. Where a system holds atoms of
several elements, a table of each element's force MAE and RMSE follows (DeePMD-kit has none).
Several systems: a weighted average (MAE by sum, RMSE by sum of squares, weights the number of
compared values; DeePMD-kit's `deepmd/utils/weight_avg.py: weighted_average`), and the table
over all systems.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..data.system import DataError, System, find_systems

log = logging.getLogger("deepmd_tebd")

RULE = "# ----------------------------------------------- "


def find_test_systems(system: str | None, datafile: str | None) -> list[Path]:
    """The systems under `system` (searched recursively), or those listed in `datafile`."""
    if datafile is not None:
        path = Path(datafile)
        if not path.is_file():
            raise DataError(f"{path}: no such data file (-f lists one system per line)")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        found = [Path(n) for n in names]
    else:
        found = find_systems(system)
    if not found:
        raise DataError(f"Did not find valid system under {system or datafile}")
    return found


def load_test_frames(sys_: System, set_prefix: str, numb_test: int, shuffle: bool,
                     seed) -> dict:
    """The frames of the system's last set that `dp test` compares, missing labels as zeros."""
    sets = sorted(p for p in sys_.path.glob(f"{set_prefix}.*") if p.is_dir())
    if not sets:
        raise DataError(f"no {set_prefix}.* directory found in {sys_.path}")
    set_dir = sets[-1]
    data = sys_.load_set(set_dir)
    nf = data["coord"].shape[0]
    labels, _ = sys_.load_labels_or_zeros(set_dir, ("energy", "force", "virial", "atom_ener"),
                                          nf)
    data.update(labels)
    order = np.arange(nf)
    if shuffle:
        order = np.random.RandomState(seed).permutation(nf)
    count = nf if numb_test == 0 else min(numb_test, nf)
    return {key: value[order[:count]] for key, value in data.items()}


def _log_errors(figures: dict, virial: bool) -> None:
    """The energy, force and (periodic systems, averages) virial lines of dp test."""
    lines = [("Energy MAE        ", "mae_e", "eV"), ("Energy RMSE       ", "rmse_e", "eV"),
             ("Energy MAE/Natoms ", "mae_ea", "eV"), ("Energy RMSE/Natoms", "rmse_ea", "eV"),
             ("Force  MAE        ", "mae_f", "eV/A"), ("Force  RMSE       ", "rmse_f", "eV/A")]
    if virial:
        lines += [("Virial MAE        ", "mae_v", "eV"), ("Virial RMSE       ", "rmse_v", "eV"),
                  ("Virial MAE/Natoms ", "mae_va", "eV"), ("Virial RMSE/Natoms", "rmse_va", "eV")]
    for label, key, unit in lines:
        log.info(f"{label} : {figures[key]:e} {unit}")


def _errors(diff: np.ndarray) -> tuple[float, float]:
    return float(np.mean(np.abs(diff))), float(np.sqrt(np.mean(diff * diff)))


def element_force_errors(diff: np.ndarray, types: np.ndarray) -> dict:
    """{type index: (sum |d|, sum d^2, number of components)} of the force differences `diff`
    [nf, natoms*3] over the atoms of each type; `types` [natoms] or [nf, natoms] (-1: a
    virtual atom, left out)."""
    nf = diff.shape[0]
    per_atom = diff.reshape(nf, -1, 3)
    types = np.broadcast_to(types, per_atom.shape[:2])
    sums = {}
    for index in np.unique(types[types >= 0]):
        d = per_atom[types == index]
        sums[int(index)] = (float(np.abs(d).sum()), float((d * d).sum()), d.size)
    return sums


def log_element_force_errors(sums: dict, type_map) -> None:
    """The per-element force table: MAE and RMSE over the force components of each type's
    atoms, by the model's type map (a graph without one: `type N`)."""
    log.info("# force errors per element: force vectors compared, MAE, RMSE (eV/A)")
    for index in sorted(sums):
        name = type_map[index] if index < len(type_map) else f"type_{index}"
        total_abs, total_sq, size = sums[index]
        log.info(f"#   {name:<6s} {size // 3:8d}  {total_abs / size:e}  "
                 f"{math.sqrt(total_sq / size):e}")


def _merge_element_sums(results: list[dict]) -> dict:
    merged = {}
    for result in results:
        for name, values in result["_elements"].items():
            merged[name] = tuple(a + b for a, b in zip(merged.get(name, (0.0, 0.0, 0)), values))
    return merged


def _unsort(array: np.ndarray, sys_: System, ndof: int) -> np.ndarray:
    """[nf, natoms*ndof] in the system's sorted order -> [nf*natoms, ndof] in type.raw order."""
    nf = array.shape[0]
    sorted_ = array.reshape(nf, sys_.natoms, ndof)
    original = np.empty_like(sorted_)
    original[:, sys_.idx_map] = sorted_
    return original.reshape(-1, ndof)


# the files -d PREFIX writes, PREFIX + suffix
DETAIL_SUFFIXES = (".e.out", ".e_peratom.out", ".f.out", ".v.out", ".v_peratom.out",
                   ".parity.png")


def detail_path(prefix: str, suffix: str) -> Path:
    """The detail file `suffix` (of DETAIL_SUFFIXES) of the prefix given with -d."""
    return Path(prefix).with_suffix(suffix)


def check_detail_prefix(prefix: str, model: str) -> None:
    """OutputError unless every detail file of `prefix` can be written (store/outputs.py) and
    the prefix names files, not a folder; none may be the model."""
    from ..store.outputs import OutputError, check_output

    if Path(prefix).name in ("", ".", "..") or Path(prefix).is_dir():
        raise OutputError(f"{prefix}: the prefix of the detail files (-d) is a folder; give a "
                          f"file-name prefix, e.g. {Path(prefix) / 'detail'}")
    for suffix in DETAIL_SUFFIXES:
        check_output(detail_path(prefix, suffix), "a detail file (-d)", inputs=(model,))


def _save_detail(prefix: str, suffix: str, columns: np.ndarray, header: str, append: bool):
    path = detail_path(prefix, suffix)
    with open(path, "ab" if append else "wb") as f:
        np.savetxt(f, columns, header=header)


def evaluate_system(dp, sys_: System, frames: dict, atomic: bool, detail: str | None,
                append: bool) -> dict:
    """Logs one system's errors and returns {name: (value, size)} for the weighted average."""
    natoms = sys_.natoms
    nf = frames["coord"].shape[0]
    cells = frames["box"] if sys_.pbc else None
    types = frames["type"] if sys_.mixed_type else sys_.atype  # mixed-type: each frame's
    energy, force, virial, *atom = dp.eval(frames["coord"].reshape(nf, natoms, 3), cells,
                                           types, atomic=atomic)
    energy = energy.reshape(nf, 1)
    force = force.reshape(nf, natoms * 3)
    mae_e, rmse_e = _errors(energy - frames["energy"])
    mae_f, rmse_f = _errors(force - frames["force"])
    mae_v, rmse_v = _errors(virial - frames["virial"])
    log.info(f"# number of test data : {nf:d} ")
    figures = {"mae_e": mae_e, "rmse_e": rmse_e, "mae_ea": mae_e / natoms,
               "rmse_ea": rmse_e / natoms, "mae_f": mae_f, "rmse_f": rmse_f, "mae_v": mae_v,
               "rmse_v": rmse_v, "mae_va": mae_v / natoms, "rmse_va": rmse_v / natoms}
    _log_errors(figures, virial=sys_.pbc)
    elements = element_force_errors(force - frames["force"], types)
    if len(elements) > 1:
        log_element_force_errors(elements, dp.get_type_map())
    if atomic:
        mae_ae, rmse_ae = _errors(atom[0].reshape(nf, natoms) - frames["atom_ener"])
        log.info(f"Atomic ener MAE    : {mae_ae:e} eV")
        log.info(f"Atomic ener RMSE   : {rmse_ae:e} eV")
    if detail is not None:
        name = str(sys_.path)
        _save_detail(detail, ".e.out", np.column_stack([frames["energy"], energy]),
                     f"{name}: data_e pred_e", append)
        _save_detail(detail, ".e_peratom.out",
                     np.column_stack([frames["energy"], energy]) / natoms,
                     f"{name}: data_e pred_e", append)
        _save_detail(detail, ".f.out",
                     np.hstack([_unsort(frames["force"], sys_, 3), _unsort(force, sys_, 3)]),
                     f"{name}: data_fx data_fy data_fz pred_fx pred_fy pred_fz", append)
        comps = [f"{a}{b}" for a in "xyz" for b in "xyz"]
        header = f"{name}: " + " ".join([f"data_v{c}" for c in comps] +
                                        [f"pred_v{c}" for c in comps])
        _save_detail(detail, ".v.out", np.hstack([frames["virial"], virial]), header, append)
        _save_detail(detail, ".v_peratom.out",
                     np.hstack([frames["virial"], virial]) / natoms, header, append)
    sizes = {"e": nf, "ea": nf, "f": force.size, "v": virial.size, "va": virial.size}
    return {**{key: (value, sizes[key.split("_")[1]]) for key, value in figures.items()},
            "_elements": elements,
            "_parity": (frames["energy"].ravel() / natoms, energy.ravel() / natoms,
                        frames["force"].ravel(), force.ravel())}


def weighted_average(results: list[dict]) -> dict:
    """MAE: size-weighted mean; RMSE: square root of the size-weighted mean square."""
    out = {}
    for key in results[0]:
        if key.startswith("_"):
            continue
        total = sum(r[key][1] for r in results)
        if key.startswith("mae"):
            out[key] = sum(r[key][0] * r[key][1] for r in results) / total
        else:
            out[key] = math.sqrt(sum(r[key][0] ** 2 * r[key][1] for r in results) / total)
    return out


def report_errors(dp, systems: list[Path], set_prefix: str = "set", numb_test: int = 0,
                  rand_seed=None, shuffle_test: bool = False, detail_file: str | None = None,
                  atomic: bool = False) -> None:
    """Logs the errors of the model `dp` (a DeepPot) on each system and, for several, their
    weighted average; with `detail_file`, writes the detail files and the parity plot."""
    type_map = dp.get_type_map()
    results = []
    for index, path in enumerate(systems):
        sys_ = System(path, type_map)
        if sys_.mixed_type and not getattr(dp, "mixed_types", False):
            raise DataError(f"{path} is in the mixed-type format (set.*/real_atom_types.npy: "
                            "every frame its own atom types), which the model does not take: "
                            "only se_atten and se_atten_v2 models evaluate it")
        if not sys_.mixed_type and sys_.natoms and int(sys_.atype.max()) >= dp.get_ntypes():
            raise DataError(f"{path / 'type.raw'} uses type {int(sys_.atype.max())}, but the "
                            f"model knows only {type_map}")
        frames = load_test_frames(sys_, set_prefix, numb_test, shuffle_test, rand_seed)
        if atomic and not any((p / "atom_ener.npy").is_file()
                              for p in sys_.path.glob(f"{set_prefix}.*")):
            raise DataError(f"{sys_.path}: -a compares atomic energies, but the system has no "
                            "atom_ener.npy")
        log.info("# ---------------output of dp test--------------- ")
        log.info(f"# testing system : {path}")
        results.append(evaluate_system(dp, sys_, frames, atomic, detail_file, append=index > 0))
        log.info(RULE)
    if len(results) > 1:
        avg = weighted_average(results)
        log.info("# ----------weighted average of errors----------- ")
        log.info(f"# number of systems : {len(results)}")
        _log_errors(avg, virial=True)
        elements = _merge_element_sums(results)
        if len(elements) > 1:
            log_element_force_errors(elements, type_map)
        log.info(RULE)
    if detail_file is not None:
        from .parity_plot import write_parity_plot

        plot = write_parity_plot(results, detail_path(detail_file, ".parity.png"))
        if plot is None:
            log.warning("matplotlib is not installed: no parity plot")
        else:
            log.info(f"parity plot written to {plot}")
