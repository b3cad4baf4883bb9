"""LAMMPS with DeePMD-kit's `pair_style deepmd`, from the oracle venv (deepmd_oracle.py).

DeePMD-kit's `lmp` extra installs the `lammps` package and an `lmp` launcher that loads
DeePMD-kit's plugin. `require_lammps()` finds that launcher, installing the extra into the oracle
venv when it is missing. `run_lammps(...)` writes a data file and an input script for one frame
and runs them; results are read from LAMMPS's own output files. Only NumPy and the standard
library are used here.
"""
from __future__ import annotations

import fcntl
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from .deepmd_oracle import DEEPMD_VERSION, _clean_env, _log, oracle_python, venv_path

# LAMMPS metal units: pressure (bar) = virial (eV) / volume (A^3) * NKTV2P
NKTV2P = 1.6021765e6
MASSES = {"H": 1.00794, "O": 15.9994, "C": 12.0107, "N": 14.0067}

_cached: tuple[str | None, str] | None = None


def lammps_executable() -> tuple[str | None, str]:
    """(path of the oracle venv's `lmp`, "") or (None, why not); installs the lmp extra once."""
    global _cached
    if _cached is not None:
        return _cached
    python, reason = oracle_python()
    if python is None:
        _cached = (None, reason)
        return _cached
    lmp = Path(python).parent / "lmp"
    if not lmp.exists():
        lock_path = Path(str(venv_path()) + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not lmp.exists():
                    _log(f"installing deepmd-kit[lmp]=={DEEPMD_VERSION} into the oracle venv")
                    proc = subprocess.run([python, "-m", "pip", "install", "--progress-bar",
                                           "off", f"deepmd-kit[lmp]=={DEEPMD_VERSION}"],
                                          capture_output=True, text=True, timeout=1800,
                                          env=_clean_env())
                    if proc.returncode != 0 or not lmp.exists():
                        _cached = (None, "installing deepmd-kit[lmp] failed: "
                                   + proc.stdout[-1500:] + proc.stderr[-1500:])
                        return _cached
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _cached = (str(lmp), "")
    return _cached


def require_lammps() -> str:
    lmp, reason = lammps_executable()
    if lmp is None:
        import pytest

        pytest.skip(f"LAMMPS with DeePMD-kit's plugin unavailable: {reason}")
    return lmp


def write_data(path: Path, coords: np.ndarray, cell: np.ndarray, types: np.ndarray,
               type_map: list[str]) -> None:
    """A LAMMPS data file (atom_style atomic) of one frame; the cell must be lower triangular
    (a along x, b in the xy plane), as LAMMPS stores it."""
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 1e-12:
        raise ValueError("the cell must be lower triangular for LAMMPS")
    lines = ["# one frame for pair_style deepmd", "", f"{len(types)} atoms",
             f"{len(type_map)} atom types", "",
             f"0.0 {cell[0, 0]:.16e} xlo xhi", f"0.0 {cell[1, 1]:.16e} ylo yhi",
             f"0.0 {cell[2, 2]:.16e} zlo zhi",
             f"{cell[1, 0]:.16e} {cell[2, 0]:.16e} {cell[2, 1]:.16e} xy xz yz", "", "Masses", ""]
    lines += [f"{i + 1} {MASSES.get(name, 1.0)}" for i, name in enumerate(type_map)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {t + 1} {x:.16e} {y:.16e} {z:.16e}"
              for i, (t, (x, y, z)) in enumerate(zip(types, coords.reshape(-1, 3)))]
    path.write_text("\n".join(lines) + "\n")


def run_lammps(workdir: Path, graph: Path, coords, cell, types, type_map, nve_steps: int = 0,
               timestep_ps: float = 0.00025, temperature: float = 50.0, thermo_every: int = 10,
               threads: int | None = None, timeout: float = 1800,
               name_elements: bool = True) -> dict:
    """Runs pair_style deepmd on one frame: step 0 (energy, forces, virial), then `nve_steps`
    of NVE from velocities at `temperature`. type_map names the LAMMPS types (masses) and, with
    name_elements, `pair_coeff * * O H`; without, a bare `pair_coeff * *` (LAMMPS type k is
    the model's type k - 1, for a graph without a type map). Returns {"energy", "forces" [nat, 3] in the input
    order, "virial" [9] (eV, xx xy xz yx ... as DeePMD-kit orders it), "thermo" (rows of step,
    pe, ke, etotal), "wall_s", "loop_s"}."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.lmp", coords, cell, types, type_map)
    script = f"""units metal
boundary p p p
atom_style atomic
atom_modify map yes
read_data data.lmp
pair_style deepmd {Path(graph).resolve()}
pair_coeff * * {' '.join(type_map) if name_elements else ''}
neighbor 1.0 bin
compute vir all pressure NULL virial
thermo_style custom step pe ke etotal c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol
thermo_modify format float %.16e
thermo {thermo_every}
dump f all custom 1 forces.dump id fx fy fz
dump_modify f format float %.16e sort id
run 0
undump f
"""
    if nve_steps:
        script += f"""velocity all create {temperature} 12345 mom yes rot yes dist gaussian
timestep {timestep_ps}
fix integrate all nve
run {nve_steps}
"""
    (workdir / "in.lammps").write_text(script)
    lmp = require_lammps()
    env = _clean_env({"TF_CPP_MIN_LOG_LEVEL": "3"})
    if threads is not None:
        for key in ("OMP_NUM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS",
                    "TF_INTER_OP_PARALLELISM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                    "DP_INTER_OP_PARALLELISM_THREADS"):
            env[key] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run([lmp, "-in", "in.lammps", "-log", "log.lammps"], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    log = (workdir / "log.lammps").read_text()
    blocks = re.findall(r"^\s*Step\s+PotEng.*?\n(.*?)^Loop time of ([\d.eE+-]+)", log,
                        re.S | re.M)
    rows = [[[float(x) for x in line.split()] for line in block.strip().splitlines()
             if re.match(r"^\s*\d+\s", line)] for block, _ in blocks]
    first = rows[0][0]
    step0 = dict(zip(["step", "pe", "ke", "etotal", "pxx", "pyy", "pzz", "pxy", "pxz", "pyz",
                      "vol"], first))
    w = {k: step0[k] * step0["vol"] / NKTV2P for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")}
    virial = np.array([w["pxx"], w["pxy"], w["pxz"], w["pxy"], w["pyy"], w["pyz"], w["pxz"],
                       w["pyz"], w["pzz"]])
    dump = (workdir / "forces.dump").read_text().splitlines()
    start = dump.index(next(line for line in dump if line.startswith("ITEM: ATOMS"))) + 1
    forces = np.array([[float(x) for x in line.split()[1:4]] for line in dump[start:]])
    thermo = np.array([row[:4] for row in rows[1]]) if nve_steps else np.zeros((0, 4))
    loop_s = float(blocks[1][1]) if nve_steps else 0.0
    return {"energy": step0["pe"], "forces": forces, "virial": virial, "thermo": thermo,
            "wall_s": wall, "loop_s": loop_s, "stdout": proc.stdout}
