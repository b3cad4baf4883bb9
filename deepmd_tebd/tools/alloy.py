"""Multi-element example data: random fcc alloys labelled by ASE's EMT potential, written as
DeePMD-kit npy systems with one global type map.

Command line::

    python -m deepmd_tebd.tools.alloy OUT [--elements Cu,Ag,Au,Ni,Pd,Pt,Al] [--systems 8]
                                          [--frames 60] [--atoms 108] [--seed 0]

writes ``OUT/data_0`` ... Each system is an fcc supercell of a random composition of 2 to all the
elements (every element in at least one system; system k always holds element k, counted
cyclically), its lattice constant the composition's mean of EMT's relaxed fcc constants (Vegard's
law), its cell strained and sheared by a few per cent, and its frames taken from Langevin
dynamics at a temperature drawn between 300 and 1500 K. Labels: EMT's energy, forces and virial
(-stress x volume, dpdata's convention). type_map.raw lists all the elements in the order given,
type.raw indexes it. ASE is needed (pip install ase). See deepmd_tebd/tools/README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import numpy as np

from .progress import Progress, write_system

__all__ = ["EMT_ELEMENTS", "fcc_lattice_constant", "main", "sample_system"]

EMT_ELEMENTS = ("Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al")  # the metals of ASE's EMT
TIMESTEP_FS = 2.0
FRICTION = 0.02  # Langevin friction, 1/fs


def fcc_lattice_constant(element: str) -> float:
    """EMT's equilibrium fcc lattice constant of `element` (Angstrom): the minimum of a
    parabola through the energies at three constants around ASE's reference value, refined
    twice."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk(element, "fcc", cubic=True)
    a = float(atoms.cell[0, 0])
    h = 0.05
    for _ in range(3):
        energies = []
        for trial in (a - h, a, a + h):
            atoms.set_cell(np.eye(3) * trial, scale_atoms=True)
            atoms.calc = EMT()
            energies.append(atoms.get_potential_energy())
        e_minus, e_0, e_plus = energies
        a -= h * (e_plus - e_minus) / (2.0 * (e_plus - 2.0 * e_0 + e_minus))
        h /= 10.0
    return a


def _repeats(atoms: int) -> tuple[int, int, int]:
    """The most cubic (nx, ny, nz) with 4 nx ny nz = atoms (conventional fcc cells)."""
    cells = atoms // 4
    best = None
    for nx in range(1, cells + 1):
        for ny in range(nx, cells + 1):
            if cells % (nx * ny) == 0:
                nz = cells // (nx * ny)
                if nz >= ny:
                    shape = (nz - nx, (nx, ny, nz))
                    best = shape if best is None or shape < best else best
    return best[1]


def _composition(k: int, nsystems: int, elements, rng) -> list[int]:
    """Indices of the elements of system k: those of positions k, k + nsystems, ... (so that
    every element is in some system) and random others, 2 to all of them in total."""
    must = list(range(k % len(elements), len(elements), nsystems)) if k < len(elements) \
        else [k % len(elements)]
    count = int(rng.integers(max(2, len(must)), len(elements) + 1))
    others = [e for e in rng.permutation(len(elements)) if e not in must]
    return sorted(must + [int(e) for e in others[:count - len(must)]])


def sample_system(elements, chosen, frames: int, natoms: int, rng, constants, stride: int = 10,
                  equilibration: int = 200, on_step=None) -> dict:
    """One system: types (indices of `elements`), coord [frames, natoms*3], box [frames, 9],
    energy [frames], force [frames, natoms*3], virial [frames, 9]; `chosen` the element indices
    present, constants their relaxed fcc constants."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    try:  # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    fractions = rng.dirichlet(np.ones(len(chosen)))
    counts = np.ones(len(chosen), dtype=int)  # every chosen element at least once
    extra = rng.multinomial(natoms - len(chosen), fractions)
    counts += extra
    types = np.repeat(np.array(chosen), counts)
    rng.shuffle(types)
    lattice = float(np.dot(counts / natoms, [constants[elements[e]] for e in chosen]))
    atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(_repeats(natoms))
    atoms.set_chemical_symbols([elements[t] for t in types])
    strain = rng.uniform(-0.03, 0.03, (3, 3))
    strain = 0.5 * (strain + strain.T)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    atoms.calc = EMT()
    temperature = float(rng.uniform(300.0, 1500.0))
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    dynamics = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature,
                        friction=FRICTION / units.fs, fixcm=False, rng=rng)
    out = {key: [] for key in ("coord", "box", "energy", "force", "virial")}
    for step in range(equilibration + frames * stride):
        dynamics.run(1)
        taken = step >= equilibration and (step - equilibration + 1) % stride == 0
        if taken:
            out["coord"].append(atoms.get_positions().reshape(-1))
            out["box"].append(atoms.cell[:].reshape(-1))
            out["energy"].append(atoms.get_potential_energy())
            out["force"].append(atoms.get_forces().reshape(-1))
            stress = atoms.get_stress(voigt=False)
            out["virial"].append((-stress * atoms.get_volume()).reshape(-1))
        if on_step is not None:
            on_step(taken)
    system = {key: np.array(value, dtype=np.float64) for key, value in out.items()}
    system["types"] = types
    return system


def main(argv=None) -> int:
    """The command line: generates the systems into the output folder; returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m deepmd_tebd.tools.alloy",
        description="Generate multi-element training data (DeePMD-kit npy systems): random fcc "
                    "alloys labelled by ASE's EMT potential, sampled by Langevin dynamics. See "
                    "deepmd_tebd/tools/README.md.")
    parser.add_argument("output", help="directory to write data_0, data_1, ... into")
    parser.add_argument("--elements", default=",".join(EMT_ELEMENTS),
                        help=f"comma-separated EMT metals ({','.join(EMT_ELEMENTS)})")
    parser.add_argument("--systems", type=int, default=8, help="systems (8)")
    parser.add_argument("--frames", type=int, default=60, help="frames per system (60)")
    parser.add_argument("--atoms", type=int, default=108,
                        help="atoms per system, a multiple of 4 (108: 3x3x3 fcc cells)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--stride", type=int, default=10,
                        help=f"MD steps of {TIMESTEP_FS:g} fs between frames (10)")
    parser.add_argument("--equilibration", type=int, default=200,
                        help="MD steps before the first frame (200)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    elements = [e.strip() for e in args.elements.split(",") if e.strip()]
    unknown = [e for e in elements if e not in EMT_ELEMENTS]
    if unknown or len(set(elements)) != len(elements) or len(elements) < 2:
        parser.error(f"--elements: expected 2 or more distinct EMT metals of "
                     f"{','.join(EMT_ELEMENTS)}, got {args.elements!r}")
    for name in ("systems", "frames", "stride"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.atoms < 4 or args.atoms % 4:
        parser.error(f"--atoms must be a positive multiple of 4 (fcc cells), got {args.atoms}")
    if args.equilibration < 0:
        parser.error("--equilibration must not be negative")
    if args.systems * args.atoms < len(elements):
        parser.error("--systems x --atoms must hold every element at least once")
    if importlib.util.find_spec("ase") is None:
        parser.error("ASE is needed: pip install ase")
    constants = {e: fcc_lattice_constant(e) for e in elements}
    steps = args.equilibration + args.frames * args.stride
    progress = None if args.quiet else Progress(args.systems * steps,
                                                args.systems * args.frames, sys.stderr, "alloy")
    for k in range(args.systems):
        rng = np.random.default_rng([args.seed, k])
        chosen = _composition(k, args.systems, elements, rng)
        if progress is not None:
            names = "-".join(elements[e] for e in chosen)
            progress.system = f"system {k + 1}/{args.systems} ({names}),"
        system = sample_system(elements, chosen, args.frames, args.atoms, rng, constants,
                               args.stride, args.equilibration,
                               None if progress is None else progress.step)
        write_system(os.path.join(args.output, f"data_{k}"), system, elements)
    if progress is not None:
        progress.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
