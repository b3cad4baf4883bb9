"""An ASE calculator on a frozen model: `DP("frozen_model.pb")` gives energy, free_energy,
forces and stress (and the virial in `results["virial"]`) of an `ase.Atoms`.

    from ase.io import read
    from deepmd_tebd.calculator import DP
    atoms = read("water.xyz")
    atoms.calc = DP("frozen_model.pb")
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Atoms are mapped to the model's types by their chemical symbols (`type_dict` overrides it:
symbol -> type index; required for a model trained without a type map). Periodic along all
three directions or along none (a cell is then ignored); stress needs a periodic cell. `ase` is an optional dependency (the package's `[ase]`
extra).
"""
from __future__ import annotations

import numpy as np

try:
    from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
except ImportError as err:  # pragma: no cover - exercised only without ase
    raise ImportError("deepmd_tebd.calculator needs ASE: pip install ase (or the package's "
                      "[ase] extra)") from err

from .infer import DeepPot


class DP(Calculator):
    """ASE calculator of a frozen model (a path or a DeepPot); type_dict maps element names to
    the model's type indices (default: its type map)."""

    implemented_properties = ["energy", "free_energy", "forces", "virial", "stress"]

    def __init__(self, model, label: str = "DP", type_dict: dict | None = None, **kwargs):
        super().__init__(label=label, **kwargs)
        self.dp = model if isinstance(model, DeepPot) else DeepPot(model)
        if type_dict is None and not self.dp.get_type_map():
            # DeePMD-kit's calculator fails here too (deepmd/calculator.py: DP.__init__)
            raise ValueError(f"{getattr(self.dp, 'model_file', 'the model')} has no type map (it "
                             "was trained without model/type_map): pass type_dict, e.g. "
                             "type_dict={'O': 0, 'H': 1}, to map element symbols to its "
                             f"{self.dp.get_ntypes()} type indices")
        self.type_dict = dict(type_dict) if type_dict is not None else {
            name: i for i, name in enumerate(self.dp.get_type_map())}

    def _types(self, atoms) -> np.ndarray:
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.type_dict))
        if unknown:
            raise ValueError(f"atoms of element(s) {unknown} are not in the model's type map "
                             f"{self.dp.get_type_map()}; pass type_dict to map them")
        return np.array([self.type_dict[s] for s in symbols], dtype=np.int32)

    def calculate(self, atoms=None, properties=("energy", "forces"),
                  system_changes=all_changes):
        """Energy, free energy, forces, virial and (periodic cells) stress of `atoms`."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = atoms.get_pbc()
        if pbc.any() and not pbc.all():
            raise ValueError(f"periodic boundaries along some directions only ({pbc.tolist()}) "
                             "are not supported: all three or none")
        cell = atoms.get_cell().array.reshape(1, 9) if pbc.all() else None
        coords = atoms.get_positions().reshape(1, -1, 3)
        energy, forces, virial = self.dp.eval(coords, cell, self._types(atoms))
        self.results["energy"] = float(energy[0, 0])
        self.results["free_energy"] = float(energy[0, 0])
        self.results["forces"] = forces[0]
        self.results["virial"] = virial[0].reshape(3, 3)
        if "stress" in properties:
            if cell is None:
                raise PropertyNotImplementedError("stress needs a periodic cell")
            # stress = -virial / volume, in Voigt order xx yy zz yz xz xy
            stress = -0.5 * (virial[0].reshape(3, 3) + virial[0].reshape(3, 3).T) / (
                atoms.get_volume())
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
