"""The multi-element data generator (deepmd_tebd.tools.alloy): its labels are EMT's energy, its
forces the energy's negative gradient and its virial the negative strain derivative (central
differences); dpdata reads the systems; every element appears; the same seed gives the same
files; bad options are refused."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402

from deepmd_tebd.tools import alloy  # noqa: E402

OPTIONS = ["--systems", "3", "--frames", "2", "--atoms", "32", "--equilibration", "4",
           "--stride", "2", "--quiet"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("alloy")
    assert alloy.main([str(root)] + OPTIONS) == 0
    return root


def _frame(system, k=1):
    names = (system / "type_map.raw").read_text().split()
    types = np.loadtxt(system / "type.raw", dtype=int)
    arrays = {key: np.load(system / "set.000" / f"{key}.npy")
              for key in ("coord", "box", "energy", "force", "virial")}
    atoms = Atoms([names[t] for t in types], positions=arrays["coord"][k].reshape(-1, 3),
                  cell=arrays["box"][k].reshape(3, 3), pbc=True)
    atoms.calc = EMT()
    return atoms, {key: value[k] for key, value in arrays.items()}


def _energy(atoms, positions=None, cell=None):
    copy = atoms.copy()
    if cell is not None:
        copy.set_cell(cell, scale_atoms=False)
    if positions is not None:
        copy.set_positions(positions)
    copy.calc = EMT()
    return copy.get_potential_energy()


def test_labels_are_emts_energy_and_forces_are_its_negative_gradient(generated):
    atoms, labels = _frame(generated / "data_1")
    assert abs(atoms.get_potential_energy() - labels["energy"]) < 1e-10
    force = labels["force"].reshape(-1, 3)
    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (17, 2), (31, 0)]:
        plus, minus = atoms.get_positions(), atoms.get_positions()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = -(_energy(atoms, plus) - _energy(atoms, minus)) / (2 * h)
        assert abs(numeric - force[atom, axis]) < 1e-6 * max(1.0, abs(force[atom, axis]))


def test_virial_is_minus_the_strain_derivative_of_the_energy(generated):
    atoms, labels = _frame(generated / "data_2")
    virial = labels["virial"].reshape(3, 3)
    np.testing.assert_allclose(virial, virial.T, atol=1e-10)
    h = 1e-6
    cell, positions = atoms.cell[:], atoms.get_positions()
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                values.append(_energy(atoms, positions @ strain, cell @ strain))
            numeric[a, b] = -(values[0] - values[1]) / (2 * h)
    np.testing.assert_allclose(virial, 0.5 * (numeric + numeric.T), rtol=1e-5, atol=1e-5)


def test_dpdata_reads_the_systems_with_one_type_map(generated):
    dpdata = pytest.importorskip("dpdata")
    names = set()
    for k in range(3):
        system = dpdata.LabeledSystem(str(generated / f"data_{k}"), fmt="deepmd/npy")
        assert system.get_atom_names() == list(alloy.EMT_ELEMENTS)
        assert len(system) == 2 and system.get_natoms() == 32
        np.testing.assert_array_equal(system["energies"],
                                      np.load(generated / f"data_{k}/set.000/energy.npy"))
        np.testing.assert_array_equal(system["virials"].reshape(2, 9),
                                      np.load(generated / f"data_{k}/set.000/virial.npy"))
        present = {alloy.EMT_ELEMENTS[t] for t in system["atom_types"]}
        assert len(present) >= 2
        names |= present
    assert names == set(alloy.EMT_ELEMENTS)  # every element in some system


def test_same_seed_same_files_other_seed_other_files(generated, tmp_path):
    assert alloy.main([str(tmp_path / "again")] + OPTIONS) == 0
    assert alloy.main([str(tmp_path / "other"), "--seed", "1"] + OPTIONS) == 0
    for key in ("coord", "force", "virial"):
        same = np.load(tmp_path / "again/data_0/set.000" / f"{key}.npy")
        np.testing.assert_array_equal(same, np.load(generated / "data_0/set.000" / f"{key}.npy"))
    other = np.load(tmp_path / "other/data_0/set.000/coord.npy")
    assert other.shape != same.shape or not np.allclose(other, np.load(
        generated / "data_0/set.000/coord.npy"))


@pytest.mark.parametrize("options, fragment", [
    (["--elements", "Cu,Fe"], "--elements"), (["--elements", "Cu"], "--elements"),
    (["--atoms", "30"], "multiple of 4"), (["--frames", "0"], "--frames"),
])
def test_bad_options_are_refused(tmp_path, capsys, options, fragment):
    with pytest.raises(SystemExit) as info:
        alloy.main([str(tmp_path / "out")] + options)
    assert info.value.code == 2 and fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_relaxed_lattice_constant_is_emts_energy_minimum():
    a = alloy.fcc_lattice_constant("Cu")
    energies = [_energy(_cubic_cu(x)) for x in (a - 1e-3, a, a + 1e-3)]
    assert energies[1] < energies[0] and energies[1] < energies[2]


def _cubic_cu(a):
    from ase.build import bulk

    return bulk("Cu", "fcc", a=a, cubic=True)
